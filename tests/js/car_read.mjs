// Read a CAR file with @ipld/car (IPLD's reference JavaScript implementation) and report
// its roots and every block's CID and SHA-256, so tests/interop can check threadkit's
// exports are standard CARv1 archives. Usage: node car_read.mjs <file.car>
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { CarReader } from "@ipld/car";

const bytes = readFileSync(process.argv[2]);
const reader = await CarReader.fromBytes(bytes);
const roots = (await reader.getRoots()).map((cid) => cid.toString());
const blocks = [];
for await (const { cid, bytes: data } of reader.blocks()) {
  const digest = createHash("sha256").update(data).digest("hex");
  blocks.push({
    cid: cid.toString(),
    version: cid.version,
    codec: cid.code,
    hash: cid.multihash.code,
    digestMatches: Buffer.from(cid.multihash.digest).toString("hex") === digest,
    size: data.length,
  });
}
process.stdout.write(JSON.stringify({ version: reader.version, roots, blocks }));
