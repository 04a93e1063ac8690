'use strict'
// Helpers shared by generate.cjs and check.cjs (threadkit's JS cross-checks).

const hex = (bytes) => Buffer.from(bytes).toString('hex')
const unhex = (text) => Uint8Array.from(Buffer.from(text, 'hex'))

// Run fn; return {ok: true, ...result} or {ok: false, error} so one bad value
// is reported to the Python side instead of crashing the whole run.
async function attempt(fn) {
  try {
    return { ok: true, ...(await fn()) }
  } catch (err) {
    return { ok: false, error: String((err && err.message) || err) }
  }
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', (c) => chunks.push(c))
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    process.stdin.on('error', reject)
  })
}

function main(fn) {
  fn().then(
    (out) => process.stdout.write(JSON.stringify(out) + '\n'),
    (err) => {
      process.stderr.write(String((err && err.stack) || err) + '\n')
      process.exit(1)
    },
  )
}

module.exports = { hex, unhex, attempt, readStdin, main }
