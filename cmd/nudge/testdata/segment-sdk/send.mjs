// Sends identify, track, page and alias calls with the official Segment Node
// SDK to the nudge at NUDGE_URL, then flushes and exits non-zero on any error.
import { Analytics } from '@segment/analytics-node'

const analytics = new Analytics({
  writeKey: process.env.NUDGE_WRITE_KEY,
  host: process.env.NUDGE_URL,
  maxEventsInBatch: 3, // several batches, not one
  flushInterval: 50,
})
let failures = 0
analytics.on('error', (err) => { failures++; console.error('sdk error:', err) })

const userId = process.env.SDK_USER
analytics.identify({ userId, anonymousId: 'anon-sdk', traits: { email: 'sdk@example.com', plan: 'pro' } })
analytics.track({ userId, event: 'Product Added', properties: { sku: 'SHOE-42', price: 89.9 } })
analytics.page({ userId, name: 'Checkout', properties: { path: '/checkout' } })
analytics.alias({ userId, previousId: 'anon-sdk' })
analytics.track({ userId, event: 'Order Completed', properties: { revenue: 89.9 }, timestamp: new Date('2026-11-27T07:00:00Z') })
await analytics.closeAndFlush({ timeout: 10000 })
if (failures > 0) process.exit(1)
console.log('sent 5 calls')
