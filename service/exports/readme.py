"""README.txt inside every bundle: how to verify and open it with standard tools alone.

The commands are exact and tested: tests/interop/test_bundle_standard_tools.sh
runs them, with only unzip, sha256sum, minisign and age, on a real bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...crypto.minisign import SigningKey
    from .writer import BundleHeader

_TEMPLATE = """\
EVIDENCE EXPORT BUNDLE {bundle_id}
==============================================================================

Created:         {created}
Created by:      account {created_by}
Receiving body:  {body_name} ({body_id})
Node key id:     {node_key_id}  (minisign; it signs manifest.json and SHA256SUMS)
Audit log:       {log_origin}
Statements:      {count}

Everything in this bundle is protected by two signatures and the audit log.
Check them with keys you received SEPARATELY from this bundle (in person, by
a call you placed, from the published key list): the node's minisign public
key (node.pub) and the audit log's verifier key. The copy of the node key in
manifest.json is there for convenience only; never verify with it.

The statements and attachments (*.age) are encrypted with age to the keys
of {body_name}. Nobody at the sending organisation can read them.

A. WITH STANDARD TOOLS ONLY (unzip/zipinfo, minisign, sha256sum, age)
------------------------------------------------------------------------------

1. Before extracting, check that the zip holds only plain files with safe
   names (a tampered zip could hold links or paths out of the directory).
   Each of these two commands must print nothing:

     zipinfo -s {file_name} | sed '1,2d;$d' | grep -v '^-'
     zipinfo -1 {file_name} | grep -E '^/|(^|/)[.][.](/|$)'

   Then extract the bundle into a new, empty directory:

     mkdir bundle && cd bundle && unzip -q ../{file_name}

2. Check both signatures with the node key you pinned (node.pub):

     minisign -V -p /path/to/node.pub -m SHA256SUMS
     minisign -V -p /path/to/node.pub -m manifest.json

   Each must print "Signature and comment signature verified" and the trusted
   comments "evidence-intake bundle {bundle_id} SHA256SUMS" and
   "evidence-intake bundle {bundle_id} manifest.json".

3. Check every file's SHA-256 (every line must end in OK):

     sha256sum --strict -c SHA256SUMS

4. Check that no file is missing or was added (prints nothing if all is well):

     find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.minisig \\
         | sed 's|^\\./||' | LC_ALL=C sort > ../present.txt
     cut -c67- SHA256SUMS | LC_ALL=C sort | diff - ../present.txt

5. Decrypt each statement and attachment with your age identity:

     age -d -i /path/to/key.txt -o statement.json {example_path}
     age -d -i /path/to/key.txt -o attachment.bin statements/ID/attachments/0.age

   "no identity matched any of the recipients" means that file was not
   sealed to your key. A statement decrypts to JSON (statement-record/v1,
   sealed part): the text is in statement.unicode, the typed bytes in
   statement.typed_base64, and attachment N's original name, type, size and
   SHA-256 in attachments[N].

6. The audit evidence (audit/checkpoint, audit/entries.jsonl,
   audit/proofs.jsonl) proves when each statement was sealed and exported.
   Checking it needs the log's verifier key and RFC 9162 Merkle proofs,
   which the tools above cannot do: use step B for it.

B. WITH THE EVIDENCE-INTAKE TOOL (offline)
------------------------------------------------------------------------------

     intake bundle verify {file_name} --node-key node.pub --log-key log.vkey
     intake bundle open {file_name} --node-key node.pub --log-key log.vkey \\
         -i key.txt -o opened/

"verify" checks all of the above plus the checkpoint signature, every audit
entry's inclusion proof and that the log records exactly these sealed files
and this export. "open" verifies, decrypts what your key can open into
opened/ and writes opened/custody-report.html and custody-report.json.

Format: docs/formats/bundle.md of evidence-intake ({generator}).

Statements in this bundle:
{statement_list}
"""


def render_readme(*, header: BundleHeader, node_key: SigningKey, log_origin: str,
                  statements: Sequence[tuple[str, str]]) -> str:
    example = statements[0][1] if statements else "statements/ID/statement.age"
    return _TEMPLATE.format(
        bundle_id=header.bundle_id,
        created=header.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        created_by=header.created_by,
        body_name=header.body.get("name", ""),
        body_id=header.body.get("id", ""),
        node_key_id=node_key.public_key.fingerprint,
        log_origin=log_origin,
        count=len(statements),
        file_name=f"bundle-{header.bundle_id}.zip",
        example_path=example,
        generator=header.generator,
        statement_list="".join(f"  {sid}  {path}\n" for sid, path in statements) or "  (none)\n",
    )
