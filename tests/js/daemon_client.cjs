'use strict'
// Drives `threadkit daemon` through the published @textile/threads-client (its default
// websocket transport, or HTTP grpc-web) through the full scenario of issue 6; prints one JSON
// object of results for tests/api/test_api_js_client.py to check.
// Usage: node daemon_client.cjs http://127.0.0.1:<proxy port> [ws|http]
// With `http` every call that can go over HTTP grpc-web does (NodeHttpTransport); GetToken and
// the transactions are bidirectional streams, which only the websocket transport carries.

const { Client, Where } = require('@textile/threads-client')
const { Context } = require('@textile/context')
const { PrivateKey } = require('@textile/crypto')
const { ThreadID } = require('@textile/threads-id')
const { NodeHttpTransport } = require('@improbable-eng/grpc-web-node-http-transport')
const { main } = require('./common.cjs')

const schema = {
  title: 'Person',
  type: 'object',
  properties: {
    _id: { type: 'string' },
    name: { type: 'string' },
    age: { type: 'integer' },
    email: { type: 'string' },
  },
  required: ['name'],
}

async function rejection(promise) {
  try {
    await promise
  } catch (err) {
    return String((err && err.message) || err)
  }
  return null
}

main(async () => {
  const client = new Client(new Context(process.argv[2]))
  const out = {}
  const identity = PrivateKey.fromRandom()
  out.token = await client.getToken(identity)
  const wsTransport = client.rpcOptions.transport
  const http = process.argv[3] === 'http'
  if (http) client.rpcOptions.transport = NodeHttpTransport()
  const id = ThreadID.fromRandom()
  await client.newDB(id, 'jsdb')
  out.dbAgain = await rejection(client.newDB(id, 'jsdb'))
  const indexes = [{ path: 'email', unique: true }]
  await client.newCollection(id, { name: 'Person', schema, indexes })
  out.collectionAgain = await rejection(client.newCollection(id, { name: 'Person', schema }))
  const events = []
  const closer = client.listen(id, [{ collectionName: 'Person' }], (reply, err) => {
    events.push(err ? `error ${err.message}` : `${reply.action} ${reply.instanceID}`)
  })
  await new Promise((resolve) => setTimeout(resolve, 500)) // let the listener register
  const ids = await client.create(id, 'Person', [
    { name: 'ada', age: 36, email: 'ada@example.org' },
    { _id: 'given-id', name: 'bob', age: 20, email: 'bob@example.org' },
  ])
  out.ids = ids
  out.all = (await client.find(id, 'Person', {})).map((p) => p.name).sort()
  out.older = (await client.find(id, 'Person', new Where('age').ge(30))).map((p) => p.name)
  out.eq = (await client.find(id, 'Person', new Where('name').eq('bob'))).map((p) => p._id)
  const names = async (query) => (await client.find(id, 'Person', query)).map((p) => p.name)
  out.or = await names(new Where('name').eq('ada').or(new Where('age').lt(25)).orderBy('name'))
  out.sorted = await names(new Where('age').gt(0).orderBy('age'))
  out.sortedDesc = await names(new Where('age').gt(0).orderByDesc('age'))
  out.skip = await names(new Where('age').gt(0).orderBy('age').skipNum(1))
  out.limit = await names(new Where('age').gt(0).orderByDesc('age').limitTo(1))
  out.verifyBad = await rejection(client.verify(id, 'Person', [{ _id: 'given-id', age: 'x' }]))
  out.verifyGood = await rejection(
    client.verify(id, 'Person', [{ _id: 'given-id', name: 'bob', age: 22 }]),
  )
  out.createBad = await rejection(client.create(id, 'Person', [{ name: 'eve', age: 'old' }]))
  out.uniqueBad = await rejection(
    client.create(id, 'Person', [{ name: 'mallory', email: 'ada@example.org' }]),
  )
  out.afterBad = (await client.find(id, 'Person', {})).map((p) => p.name).sort()
  const bob = await client.findByID(id, 'Person', 'given-id')
  out.bob = bob
  bob.age = 21
  await client.save(id, 'Person', [bob])
  out.bobSaved = (await client.findByID(id, 'Person', 'given-id')).age
  await client.delete(id, 'Person', [ids[0]])
  out.hasDeleted = await client.has(id, 'Person', [ids[0]])
  out.hasBob = await client.has(id, 'Person', ['given-id'])
  client.rpcOptions.transport = wsTransport
  const write = client.writeTransaction(id, 'Person')
  await write.start()
  const [txID] = await write.create([{ name: 'cy', age: 50 }])
  out.txUncommitted = await client.has(id, 'Person', [txID])
  await write.end()
  out.txCommitted = await client.has(id, 'Person', [txID])
  const read = client.readTransaction(id, 'Person')
  await read.start()
  out.readHas = await read.has([txID])
  out.readFind = (await read.find({})).map((p) => p.name).sort()
  await read.end()
  await new Promise((resolve) => setTimeout(resolve, 500))
  closer.close()
  out.events = events
  if (http) client.rpcOptions.transport = NodeHttpTransport()
  out.dbs = (await client.listDBs()).map((db) => ({ id: db.id, name: db.name }))
  out.dbID = id.toString()

  const wider = { ...schema, properties: { ...schema.properties, team: { type: 'string' } } }
  await client.updateCollection(id, {
    name: 'Person',
    schema: wider,
    indexes: [...indexes, { path: 'team', unique: false }],
  })
  out.info = await client.getCollectionInfo(id, 'Person')
  out.indexes = await client.getCollectionIndexes(id, 'Person')
  await client.newCollection(id, { name: 'Scratch' })
  out.collections = (await client.listCollections(id)).map((c) => c.name).sort()
  await client.deleteCollection(id, 'Scratch')
  out.collectionsAfter = (await client.listCollections(id)).map((c) => c.name).sort()
  out.findDeleted = await rejection(client.find(id, 'Scratch', {}))
  out.dbInfo = await client.getDBInfo(id)
  await client.deleteDB(id)
  out.dbsAfter = (await client.listDBs()).map((db) => db.id)
  out.findAfterDelete = await rejection(client.find(id, 'Person', {}))
  return out
})
