// A small command-line front end to the npm package `age-encryption` (typage,
// the TypeScript age implementation), used by the interop tests as an age
// implementation nobody here wrote. Test use only.
//
//   node pq_age.mjs keygen                      print a new AGE-SECRET-KEY-PQ-1… identity
//   node pq_age.mjs to-recipient < IDENTITY     print the recipient of an identity
//   node pq_age.mjs encrypt [--armor] R… < IN   seal stdin to recipients, write stdout
//   node pq_age.mjs decrypt IDENTITY_FILE < IN  open stdin (binary or armored), write stdout
//
// Identities are read from a file, never from the command line. Errors go to
// stderr with exit status 1.

import { readFileSync } from "node:fs";
import {
  Decrypter,
  Encrypter,
  armor,
  generateHybridIdentity,
  identityToRecipient,
} from "age-encryption";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

function identityLines(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

function writeStdout(data) {
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

async function main(argv) {
  const [command, ...rest] = argv;
  switch (command) {
    case "keygen": {
      await writeStdout((await generateHybridIdentity()) + "\n");
      return;
    }
    case "to-recipient": {
      const text = new TextDecoder().decode(await readStdin());
      for (const line of identityLines(text)) {
        await writeStdout((await identityToRecipient(line)) + "\n");
      }
      return;
    }
    case "encrypt": {
      const armored = rest[0] === "--armor";
      const recipients = armored ? rest.slice(1) : rest;
      if (recipients.length === 0) throw new Error("encrypt: no recipients");
      const encrypter = new Encrypter();
      for (const r of recipients) encrypter.addRecipient(r);
      const sealed = await encrypter.encrypt(await readStdin());
      await writeStdout(armored ? armor.encode(sealed) : sealed);
      return;
    }
    case "decrypt": {
      if (rest.length !== 1) throw new Error("decrypt: expected one identity file");
      const decrypter = new Decrypter();
      for (const line of identityLines(readFileSync(rest[0], "utf8"))) {
        decrypter.addIdentity(line);
      }
      let input = await readStdin();
      const text = new TextDecoder().decode(input.subarray(0, 64));
      if (text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) {
        input = armor.decode(new TextDecoder().decode(input));
      }
      await writeStdout(await decrypter.decrypt(input));
      return;
    }
    default:
      throw new Error(`unknown command: ${command ?? "(none)"}`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`pq_age.mjs: ${err.message}\n`);
  process.exit(1);
});
