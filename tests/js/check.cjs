'use strict'
// Read one JSON object of threadkit-made values from stdin and print what ThreadDB's JS
// packages make of them. Usage: python ... | node check.cjs
//
// Input keys (all optional lists):
//   thread_ids: [string]           -> ThreadID.fromString
//   thread_id_bytes: [hex]         -> ThreadID.fromBytes
//   thread_keys: [string]          -> ThreadKey.fromString
//   public_keys: [string]          -> PublicKey.fromString
//   signatures: [{public, message, signature}] (hex message/signature) -> PublicKey.verify
//   private_keys: [string]         -> PrivateKey.fromString, its public key and signatures
//   sign_messages: [hex]           messages the JS side signs with each private key
//   bad_thread_ids / bad_thread_keys: [string]
//                                  -> report whether JS accepts them
//
// Every output entry is {ok: true, ...fields} or {ok: false, error}.

const { ThreadID } = require('@textile/threads-id')
const { PrivateKey, PublicKey } = require('@textile/crypto')
const { ThreadKey } = require('@textile/security')
const { hex, unhex, attempt, readStdin, main } = require('./common.cjs')

const describeId = (id) => ({
  variant: id.variant(),
  version: id.version(),
  bytes: hex(id.toBytes()),
  string: id.toString(),
})

const mapAll = (list, fn) => Promise.all((list || []).map((item) => attempt(() => fn(item))))

main(async () => {
  const input = JSON.parse(await readStdin())
  const messages = input.sign_messages || []
  return {
    thread_ids: await mapAll(input.thread_ids, (s) => describeId(ThreadID.fromString(s))),
    thread_id_bytes: await mapAll(input.thread_id_bytes, (h) => describeId(ThreadID.fromBytes(unhex(h)))),
    thread_keys: await mapAll(input.thread_keys, (s) => {
      const key = ThreadKey.fromString(s)
      return {
        bytes: hex(key.toBytes()),
        service: hex(key.service),
        read: key.read === undefined ? null : hex(key.read),
        can_read: key.canRead(),
        string: key.toString(),
      }
    }),
    public_keys: await mapAll(input.public_keys, (s) => {
      const pub = PublicKey.fromString(s)
      return { bytes: hex(pub.bytes), raw: hex(pub.pubKey), string: pub.toString() }
    }),
    signatures: await mapAll(input.signatures, async (item) => ({
      valid: await PublicKey.fromString(item.public).verify(unhex(item.message), unhex(item.signature)),
    })),
    private_keys: await mapAll(input.private_keys, async (s) => {
      const priv = PrivateKey.fromString(s)
      const signatures = []
      for (const message of messages) {
        signatures.push({ message, signature: hex(await priv.sign(unhex(message))) })
      }
      return {
        seed: hex(priv.seed),
        bytes: hex(priv.bytes),
        string: priv.toString(),
        public: priv.public.toString(),
        public_bytes: hex(priv.public.bytes),
        signatures,
      }
    }),
    bad_thread_ids: await mapAll(input.bad_thread_ids, (s) => describeId(ThreadID.fromString(s))),
    bad_thread_keys: await mapAll(input.bad_thread_keys, (s) => ({ bytes: hex(ThreadKey.fromString(s).toBytes()) })),
  }
})
