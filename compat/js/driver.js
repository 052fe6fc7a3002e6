'use strict'
// Drives kafkajs for the compatibility suite (run from compat/python/test_kafkajs.py).
//
// Records are generated and verified in compat/python/records.py; this driver moves
// them between files and the broker in the line format described there (tab-separated
// fields, bytes in base64) and prints admin answers as lines for pytest to check.
//
//   produce  BOOTSTRAP TOPIC CODEC IN OUT   producer.send, acks=-1, one request per chunk
//   consume  BOOTSTRAP TOPIC PARTITIONS OUT Fetch from offset 0 to the high watermark;
//                                          prints `batch PARTITION BASE_OFFSET PRODUCER_ID
//                                          PRODUCER_EPOCH BASE_SEQUENCE` per record batch
//   create   BOOTSTRAP TOPIC PARTITIONS     admin.createTopics
//   offsets  BOOTSTRAP TOPIC SPEC...        SPEC: earliest | latest | a timestamp
//   alter    BOOTSTRAP TOPIC NAME=VALUE...  admin.alterConfigs (kafkajs has no incremental API)
//   describe BOOTSTRAP TOPIC NAME...        admin.describeConfigs
//
// Consumer groups (compat/python/test_groups_*.py):
//   member key=value...                    a group member process: kafka's consumer.run with
//                                          eachBatch; options, stdin commands and stdout events
//                                          are described in compat/python/groups.py
//   groups-list BOOTSTRAP                  admin.listGroups: `group ID PROTOCOL_TYPE`
//   groups-describe BOOTSTRAP GROUP...     admin.describeGroups: `group ID STATE PROTOCOL_TYPE
//                                          PROTOCOL MEMBERS`, `member GROUP ID CLIENT_ID P,P`
//   groups-offsets BOOTSTRAP GROUP TOPIC   admin.fetchOffsets: `offset P O META`
//   groups-set-offsets BOOTSTRAP GROUP TOPIC P:O...  admin.setOffsets: `set OK|ERROR_TYPE`
//   groups-delete BOOTSTRAP GROUP...       admin.deleteGroups: `deleted GROUP OK|ERROR_TYPE`
//   groups-commit BOOTSTRAP GROUP TOPIC P:O...  OffsetCommit outside any generation (as admin
//                                          tools commit): `committed P OK|ERROR_TYPE`
//
// Consuming without a consumer group: kafkajs's consumer always joins a group, and
// runnel has no group coordinator yet. So `consume` uses kafkajs's own protocol layer
// below the consumer — its Cluster (metadata, leader lookup, connections) and Broker
// (Fetch request encoding, response decoding, record-batch decoding and decompression
// through the registered codecs). This is the code path kafkajs's consumer runs for
// each fetch; only the group membership around it is left out.

const fs = require('fs')
const readline = require('readline')
const {
  AssignerProtocol,
  Kafka,
  CompressionTypes,
  CompressionCodecs,
  ConfigResourceTypes,
  Partitioners,
  logLevel,
} = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const { createLogger } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const defaultSocketFactory = require('kafkajs/src/network/socketFactory')
const ISOLATION_LEVEL = require('kafkajs/src/protocol/isolationLevel')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')
const { ZstdCodec } = require('zstd-codec')

const CLIENT_ID = 'runnel-compat-kafkajs'
const RECORDS_PER_SEND = 300

// kafkajs ships GZIP only (on node's zlib); other codecs are registered by the application.
// Snappy: kafkajs-snappy (pure JS, snappyjs).
// LZ4 and ZSTD: the codec packages the kafkajs docs name (kafkajs-lz4, @kafkajs/zstd)
// compile native addons (`lz4`, `cppzst`) with node-gyp at install time, which needs a
// C++ toolchain and node headers that node-gyp otherwise downloads from outside the
// npm registry. Instead, small codec objects with kafkajs's codec interface wrap pure
// JavaScript implementations: lz4js (the LZ4 frame format, which Kafka's v2 batches
// use) and zstd-codec (the reference zstd compiled to JavaScript with Emscripten).
const Lz4Codec = () => ({
  async compress(encoder) {
    return Buffer.from(lz4.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4.decompress(buffer))
  },
})

let zstdPromise = null
const zstdStreaming = () => {
  if (!zstdPromise) {
    zstdPromise = new Promise(resolve => ZstdCodec.run(zstd => resolve(new zstd.Streaming())))
  }
  return zstdPromise
}
const ZstdCompressionCodec = () => ({
  async compress(encoder) {
    return Buffer.from((await zstdStreaming()).compress(encoder.buffer, 3))
  },
  async decompress(buffer) {
    return Buffer.from((await zstdStreaming()).decompress(buffer))
  },
})

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = Lz4Codec
CompressionCodecs[CompressionTypes.ZSTD] = ZstdCompressionCodec

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

const b64 = buffer => (buffer === null || buffer === undefined ? '-' : buffer.toString('base64'))
const unb64 = text => (text === '-' ? null : Buffer.from(text, 'base64'))

function parseLine(text) {
  const f = text.split('\t')
  if (f.length !== 7) throw new Error(`malformed record line: ${text.slice(0, 200)}`)
  const headers = []
  if (f[6] !== '') {
    for (const pair of f[6].split(',')) {
      const [name, value] = pair.split(':')
      headers.push([unb64(name).toString('utf8'), unb64(value)])
    }
  }
  return {
    partition: Number(f[0]),
    offset: f[1],
    timestamp: f[2],
    timestampType: Number(f[3]),
    key: unb64(f[4]),
    value: unb64(f[5]),
    headers,
  }
}

function formatLine(r) {
  const headers = r.headers.map(([n, v]) => `${b64(Buffer.from(n, 'utf8'))}:${b64(v)}`).join(',')
  return [r.partition, r.offset, r.timestamp, r.timestampType, b64(r.key), b64(r.value), headers].join('\t')
}

// kafkajs represents headers as an object: a repeated name becomes an array of values.
function headersToList(headers) {
  const list = []
  for (const [name, value] of Object.entries(headers || {})) {
    for (const v of Array.isArray(value) ? value : [value]) list.push([name, v])
  }
  return list
}

function headersToObject(list) {
  const object = {}
  for (const [name, value] of list) {
    if (object[name] === undefined) object[name] = value
    else object[name] = [].concat(object[name], [value])
  }
  return object
}

function kafka(bootstrap) {
  return new Kafka({
    clientId: CLIENT_ID,
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 5 },
  })
}

async function produce(bootstrap, topic, codec, inPath, outPath) {
  const records = fs.readFileSync(inPath, 'utf8').split('\n').filter(Boolean).map(parseLine)
  const producer = kafka(bootstrap).producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  })
  await producer.connect()
  const acked = []
  try {
    // Sequential sends keep the order within each partition; a chunk keeps every
    // batch below the broker's default message.max.bytes even uncompressed.
    for (let start = 0; start < records.length; start += RECORDS_PER_SEND) {
      const chunk = records.slice(start, start + RECORDS_PER_SEND)
      const metadata = await producer.send({
        topic,
        acks: -1,
        compression: CODECS[codec],
        messages: chunk.map(r => ({
          key: r.key,
          value: r.value,
          partition: r.partition,
          timestamp: r.timestamp,
          headers: headersToObject(r.headers),
        })),
      })
      for (const m of metadata) {
        if (m.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(m)}`)
      }
      acked.push(...metadata)
    }
  } finally {
    await producer.disconnect()
  }
  fs.writeFileSync(outPath, acked.map(m => `${m.partition}\t${m.baseOffset}`).join('\n') + '\n')
  console.log(`produced ${records.length}`)
}

async function consume(bootstrap, topic, partitions, outPath) {
  const cluster = new Cluster({
    logger: createLogger({ level: logLevel.WARN, logCreator: LoggerConsole }),
    socketFactory: defaultSocketFactory(),
    brokers: [bootstrap],
    clientId: CLIENT_ID,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    enforceRequestTimeout: true,
    retry: { retries: 5 },
    allowAutoTopicCreation: false,
    isolationLevel: ISOLATION_LEVEL.READ_COMMITTED,
  })
  await cluster.connect()
  const out = []
  const batches = []
  try {
    await cluster.addTargetTopic(topic)
    await cluster.refreshMetadata()
    const leaders = new Map(
      cluster.findTopicPartitionMetadata(topic).map(p => [p.partitionId, p.leader])
    )
    const deadline = Date.now() + 60000
    for (let partition = 0; partition < partitions; partition++) {
      const broker = await cluster.findBroker({ nodeId: leaders.get(partition) })
      let offset = 0n
      let highWatermark = -1n
      while (highWatermark < 0n || offset < highWatermark) {
        if (Date.now() > deadline) throw new Error(`timed out at p${partition} offset ${offset}`)
        const response = await broker.fetch({
          isolationLevel: ISOLATION_LEVEL.READ_COMMITTED,
          maxWaitTime: 500,
          minBytes: 1,
          maxBytes: 4 * 1024 * 1024,
          topics: [
            {
              topic,
              partitions: [{ partition, fetchOffset: offset.toString(), maxBytes: 1024 * 1024 }],
            },
          ],
        })
        const [result] = response.responses[0].partitions
        if (result.errorCode !== 0) throw new Error(`fetch p${partition}: error ${result.errorCode}`)
        highWatermark = BigInt(result.highWatermark)
        for (const m of result.messages) {
          if (m.isControlRecord) continue
          // A batch comes back whole: skip records before the requested offset.
          if (BigInt(m.offset) < offset) continue
          const batch = m.batchContext
          if (batches.length === 0 || batches[batches.length - 1].context !== batch) {
            batches.push({ partition, context: batch })
          }
          out.push(
            formatLine({
              partition,
              offset: m.offset,
              timestamp: m.timestamp,
              timestampType: m.batchContext.timestampType,
              key: m.key,
              value: m.value,
              headers: headersToList(m.headers),
            })
          )
          offset = BigInt(m.offset) + 1n
        }
      }
    }
  } finally {
    await cluster.disconnect()
  }
  fs.writeFileSync(outPath, out.join('\n') + '\n')
  for (const { partition, context: b } of batches) {
    console.log(
      `batch ${partition} ${b.firstOffset} ${b.producerId} ${b.producerEpoch} ${b.firstSequence}`
    )
  }
  console.log(`consumed ${out.length}`)
}

async function withAdmin(bootstrap, action) {
  const admin = kafka(bootstrap).admin()
  await admin.connect()
  try {
    return await action(admin)
  } finally {
    await admin.disconnect()
  }
}

async function create(bootstrap, topic, partitions) {
  const created = await withAdmin(bootstrap, admin =>
    admin.createTopics({
      topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
      waitForLeaders: true,
    })
  )
  if (!created) throw new Error(`createTopics returned false for ${topic}`)
  console.log(`created ${topic}`)
}

async function offsets(bootstrap, topic, specs) {
  await withAdmin(bootstrap, async admin => {
    const watermarks = await admin.fetchTopicOffsets(topic)
    for (const spec of specs) {
      if (spec === 'earliest' || spec === 'latest') {
        for (const w of watermarks) {
          console.log(`offset ${w.partition} ${spec} ${spec === 'earliest' ? w.low : w.high}`)
        }
      } else {
        for (const p of await admin.fetchTopicOffsetsByTimestamp(topic, Number(spec))) {
          console.log(`offset ${p.partition} ${spec} ${p.offset}`)
        }
      }
    }
  })
}

async function alter(bootstrap, topic, settings) {
  await withAdmin(bootstrap, async admin => {
    const response = await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: settings.map(s => {
            const [name, ...rest] = s.split('=')
            return { name, value: rest.join('=') }
          }),
        },
      ],
    })
    for (const r of response.resources) {
      if (r.errorCode !== 0) throw new Error(`alterConfigs: ${JSON.stringify(r)}`)
    }
  })
  console.log(`altered ${settings.length}`)
}

async function describe(bootstrap, topic, names) {
  await withAdmin(bootstrap, async admin => {
    const response = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: names }],
    })
    const [resource] = response.resources
    if (resource.errorCode !== 0) throw new Error(`describeConfigs: ${JSON.stringify(resource)}`)
    for (const name of names) {
      const entry = resource.configEntries.find(e => e.configName === name)
      if (!entry) console.log(`config ${name} MISSING`)
      else console.log(`config ${name} ${entry.configValue} ${entry.configSource}`)
    }
  })
}

// ---- consumer groups ------------------------------------------------------------

// kafkajs's own log lines go to stderr: stdout carries only member events.
const stderrLogCreator = () => ({ namespace, level, log }) =>
  process.stderr.write(`${JSON.stringify({ level, namespace, ...log })}\n`)

const emit = (...parts) => process.stdout.write(`${[Date.now(), ...parts].join(' ')}\n`)
const partitionList = partitions =>
  [...partitions].sort((a, b) => a - b).join(',') || '-'

const errorType = error =>
  (error && (error.type || (error.cause && error.cause.type) || error.name)) || 'Error'

// A member of a consumer group. kafkajs speaks the classic protocol only, rebalances
// eagerly and ships only its round-robin assignor, so `strategy` other than
// cooperative-sticky is served by round robin; it has no static membership
// (group.instance.id). A rebalance shows as REBALANCING (everything revoked) and then
// GROUP_JOIN (the new assignment).
async function member(argv) {
  const o = {
    commit: 'batch',
    protocol: 'classic',
    strategy: 'range',
    session_ms: '10000',
    heartbeat_ms: '1000',
    instance: '',
    partitions: '6',
  }
  for (const argument of argv) {
    const at = argument.indexOf('=')
    o[argument.slice(0, at)] = argument.slice(at + 1)
  }
  if (o.protocol !== 'classic') throw new Error('kafkajs has only the classic group protocol')
  if (o.instance) throw new Error('kafkajs has no static membership (group.instance.id)')
  if (o.strategy === 'cooperative-sticky') throw new Error('kafkajs has no cooperative assignor')
  const topic = o.topic
  const client = new Kafka({
    clientId: o.name,
    brokers: [o.bootstrap],
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
    retry: { retries: 10 },
  })
  const consumer = client.consumer({
    groupId: o.group,
    sessionTimeout: Number(o.session_ms),
    heartbeatInterval: Number(o.heartbeat_ms),
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 200,
    retry: { retries: 10 },
  })
  let admin = null
  let owned = new Set()
  const positions = new Map()

  const revokeAll = () => {
    if (owned.size > 0) emit('revoke', partitionList(owned))
    owned = new Set()
    positions.clear()
  }
  consumer.on(consumer.events.REBALANCING, revokeAll)
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    revokeAll() // rejoined without a REBALANCING event (e.g. UNKNOWN_MEMBER_ID)
    owned = new Set(payload.memberAssignment[topic] || [])
    emit('assign', partitionList(owned), -1)
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => emit('error', 'crash', errorType(payload.error)))

  const commit = async items => {
    if (items.length === 0) return
    try {
      await consumer.commitOffsets(
        items.map(({ partition, offset, metadata }) => ({
          topic,
          partition,
          offset: String(offset),
          metadata: metadata === undefined ? null : metadata,
        }))
      )
    } catch (error) {
      emit('commit-error', errorType(error))
      return
    }
    emit('commit', items.map(({ partition, offset }) => `${partition}:${offset}`).join(','))
  }

  const committed = async () => {
    if (admin === null) {
      admin = client.admin()
      await admin.connect()
    }
    const [answer] = await admin.fetchOffsets({ groupId: o.group, topics: [topic] })
    const items = answer.partitions
      .sort((a, b) => a.partition - b.partition)
      .map(p => `${p.partition}:${Number(p.offset) >= 0 ? p.offset : -1}:${p.metadata || '-'}`)
    emit('committed', items.join(','))
  }

  const close = async () => {
    await consumer.disconnect()
    if (admin !== null) await admin.disconnect()
    emit('closed')
    process.exit(0)
  }

  const handle = async line => {
    const words = line.trim().split(/\s+/)
    switch (words[0]) {
      case 'close':
        return close()
      case 'commit':
        if (words.length === 1) {
          return commit(
            [...positions].filter(([p]) => owned.has(p)).map(([partition, offset]) => ({ partition, offset }))
          )
        }
        return commit(
          words.slice(1).map(item => {
            const [partition, offset, ...metadata] = item.split(':')
            return {
              partition: Number(partition),
              offset: BigInt(offset),
              metadata: metadata.length ? metadata.join(':') : null,
            }
          })
        )
      case 'committed':
        return committed()
      case 'seek': {
        const partition = Number(words[1])
        consumer.seek({ topic, partition, offset: words[2] })
        positions.set(partition, BigInt(words[2]))
        return emit('seeked', partition, words[2])
      }
      default:
        return emit('error', 'unknown_command', words[0])
    }
  }

  // Commands run one at a time, in order; EOF on stdin (the test went away) closes.
  let queue = Promise.resolve()
  const lines = readline.createInterface({ input: process.stdin })
  lines.on('line', line => {
    if (line.trim()) queue = queue.then(() => handle(line)).catch(e => emit('error', errorType(e)))
  })
  lines.on('close', () => {
    queue = queue.then(close)
  })

  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      let next = null
      for (const m of batch.messages) {
        emit('record', batch.partition, m.offset, m.key.toString('utf8'))
        next = BigInt(m.offset) + 1n
      }
      if (next === null) return
      positions.set(batch.partition, next)
      if (o.commit === 'batch' && owned.has(batch.partition)) {
        await commit([{ partition: batch.partition, offset: next }])
      }
    },
  })
  // consumer.run returns once the group is joined; the process lives until `close`.
  await new Promise(() => {})
}

async function groupsList(bootstrap) {
  await withAdmin(bootstrap, async admin => {
    const { groups } = await admin.listGroups()
    for (const g of groups) console.log(`group ${g.groupId} ${g.protocolType || '-'}`)
  })
}

async function groupsDescribe(bootstrap, groupIds) {
  await withAdmin(bootstrap, async admin => {
    const { groups } = await admin.describeGroups(groupIds)
    for (const g of groups) {
      console.log(
        `group ${g.groupId} ${g.state || '-'} ${g.protocolType || '-'} ${g.protocol || '-'} ${g.members.length}`
      )
      for (const m of g.members) {
        const assignment = m.memberAssignment.length
          ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
          : null
        const partitions = assignment ? Object.values(assignment.assignment).flat() : []
        console.log(`member ${g.groupId} ${m.memberId} ${m.clientId} ${partitionList(partitions)}`)
      }
    }
  })
}

async function groupsOffsets(bootstrap, groupId, topic) {
  await withAdmin(bootstrap, async admin => {
    for (const t of await admin.fetchOffsets({ groupId, topics: [topic] })) {
      for (const p of t.partitions.sort((a, b) => a.partition - b.partition)) {
        console.log(`offset ${p.partition} ${p.offset} ${p.metadata || '-'}`)
      }
    }
  })
}

async function groupsSetOffsets(bootstrap, groupId, topic, items) {
  await withAdmin(bootstrap, async admin => {
    const partitions = items.map(item => {
      const [partition, offset] = item.split(':')
      return { partition: Number(partition), offset }
    })
    try {
      await admin.setOffsets({ groupId, topic, partitions })
      console.log('set OK')
    } catch (error) {
      console.log(`set ${errorType(error)}`)
    }
  })
}

async function groupsDelete(bootstrap, groupIds) {
  await withAdmin(bootstrap, async admin => {
    let failed = []
    try {
      await admin.deleteGroups(groupIds)
    } catch (error) {
      if (!error.groups) throw error
      failed = error.groups
    }
    for (const groupId of groupIds) {
      const failure = failed.find(f => f.groupId === groupId)
      console.log(`deleted ${groupId} ${failure ? errorType(failure.error) : 'OK'}`)
    }
  })
}

// OffsetCommit with generation -1 and no member id, as admin tools commit for an empty
// group, straight to the coordinator: kafkajs's consumer only commits partitions it owns.
async function groupsCommit(bootstrap, groupId, topic, items) {
  const cluster = new Cluster({
    logger: createLogger({ level: logLevel.WARN, logCreator: stderrLogCreator }),
    socketFactory: defaultSocketFactory(),
    brokers: [bootstrap],
    clientId: CLIENT_ID,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    enforceRequestTimeout: true,
    retry: { retries: 5 },
  })
  await cluster.connect()
  try {
    const coordinator = await cluster.findGroupCoordinator({ groupId })
    const partitions = items.map(item => {
      const [partition, offset] = item.split(':')
      return { partition: Number(partition), offset }
    })
    for (const p of partitions) {
      let outcome = 'OK'
      try {
        await coordinator.offsetCommit({
          groupId,
          groupGenerationId: -1,
          memberId: '',
          topics: [{ topic, partitions: [p] }],
        })
      } catch (error) {
        outcome = errorType(error)
      }
      console.log(`committed ${p.partition} ${outcome}`)
    }
  } finally {
    await cluster.disconnect()
  }
}

async function main(argv) {
  const [command, bootstrap, topic, ...rest] = argv
  switch (command) {
    case 'member':
      return member(argv.slice(1))
    case 'groups-list':
      return groupsList(bootstrap)
    case 'groups-describe':
      return groupsDescribe(bootstrap, argv.slice(2))
    case 'groups-offsets':
      return groupsOffsets(bootstrap, topic, rest[0])
    case 'groups-set-offsets':
      return groupsSetOffsets(bootstrap, topic, rest[0], rest.slice(1))
    case 'groups-delete':
      return groupsDelete(bootstrap, argv.slice(2))
    case 'groups-commit':
      return groupsCommit(bootstrap, topic, rest[0], rest.slice(1))
    case 'produce':
      return produce(bootstrap, topic, rest[0], rest[1], rest[2])
    case 'consume':
      return consume(bootstrap, topic, Number(rest[0]), rest[1])
    case 'create':
      return create(bootstrap, topic, Number(rest[0]))
    case 'offsets':
      return offsets(bootstrap, topic, rest)
    case 'alter':
      return alter(bootstrap, topic, rest)
    case 'describe':
      return describe(bootstrap, topic, rest)
    default:
      throw new Error(`unknown command ${command}`)
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  error => {
    console.error(error && error.stack ? error.stack : error)
    process.exit(1)
  }
)
