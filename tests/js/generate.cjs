'use strict'
// Print one JSON object of values made by ThreadDB's JS packages, for threadkit to parse.
// Usage: node generate.cjs

const { ThreadID, Variant } = require('@textile/threads-id')
const { PrivateKey } = require('@textile/crypto')
const { ThreadKey, keyToString } = require('@textile/security')
const { hex, unhex, main } = require('./common.cjs')

// Messages signed by every identity: text, empty, all byte values.
const MESSAGES = [
  hex(Buffer.from('threadkit cross-check', 'utf8')),
  '',
  hex(Uint8Array.from({ length: 256 }, (_, i) => i)),
]

function threadId(variant, size) {
  const id = ThreadID.fromRandom(variant, size)
  return {
    variant: id.variant(),
    version: id.version(),
    size,
    string: id.toString(),
    bytes: hex(id.toBytes()),
    // The same id in other multibases (ThreadDB parsers accept any base).
    other_bases: {
      base58btc: id.toString('base58btc'),
      base16: id.toString('base16'),
      base32upper: id.toString('base32upper'),
      base64url: id.toString('base64url'),
    },
  }
}

function threadKey(withRead) {
  const key = ThreadKey.fromRandom(withRead)
  return {
    can_read: key.canRead(),
    string: key.toString(),
    bytes: hex(key.toBytes()),
    service: hex(key.service),
    read: key.read === undefined ? null : hex(key.read),
  }
}

async function identity() {
  const priv = PrivateKey.fromRandom()
  const signatures = []
  for (const message of MESSAGES) {
    signatures.push({ message, signature: hex(await priv.sign(unhex(message))) })
  }
  return {
    private: priv.toString(),
    private_bytes: hex(priv.bytes),
    seed: hex(priv.seed),
    public: priv.public.toString(),
    public_bytes: hex(priv.public.bytes),
    public_raw: hex(priv.pubKey),
    signatures,
  }
}

main(async () => {
  const threadIds = []
  for (const variant of [Variant.Raw, Variant.AccessControlled]) {
    for (const size of [32, 16]) {
      threadIds.push(threadId(variant, size))
      threadIds.push(threadId(variant, size))
    }
  }
  const known = ThreadID.fromBytes(Uint8Array.from([1, 0x55, ...Array.from({ length: 32 }, (_, i) => i)]))
  return {
    thread_ids: threadIds,
    thread_keys: [threadKey(true), threadKey(true), threadKey(false), threadKey(false)],
    // ThreadKey.toString() is keyToString(toBytes()); check the helper agrees on a 64-byte key.
    key_to_string: (() => {
      const key = ThreadKey.fromRandom(true)
      return { bytes: hex(key.toBytes()), string: keyToString(key.toBytes()) }
    })(),
    identities: [await identity(), await identity(), await identity()],
    known_vector: { bytes: hex(known.toBytes()), string: known.toString() },
  }
})
