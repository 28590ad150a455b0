"""Export bundles, offline: check them, open them, report on them.

Runs on PyNaCl, pyca/cryptography and the standard library (no service code).
The format is docs/formats/bundle.md; the exporter that writes it is
``evidence_intake.service.exports``.

Public API::

    archive.open_archive(path) -> SafeArchive           # zip safety, before any read
    verify.verify_path(path, node_key, log_key, tool_version=...)
        -> (SafeArchive | None, Verification)
    verify.verify_bundle(archive, node_key, log_key, tool_version=...) -> Verification
    opener.prepare_output(dir)
    opener.open_bundle(archive, verification, identities, dir) -> OpenResult
    custody.build_report(...) -> dict; custody.write_reports(dir, doc)
    manifest.parse_manifest(bytes) -> Manifest          # only after the signature is checked

Verification never raises for a bad bundle: every outcome is a check in
``Verification.report``, whose ``exit_code`` tells the failure class
(errors.BundleError subclasses: archive 3, signature/manifest 4, content 5,
audit evidence 6).
"""
