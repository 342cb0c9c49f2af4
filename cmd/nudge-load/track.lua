-- wrk script: POST /v1/track, one ~500-byte event with a unique messageId.
-- Basic auth user "bench" (the write key), empty password.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic YmVuY2g6"
local pad = string.rep("x", 300)
local counter = 0
local run = tostring(os.time())
function request()
  counter = counter + 1
  local body = '{"type":"track","messageId":"' .. run .. '-' .. tid .. '-' .. counter .. '","userId":"u' .. (counter % 100000) .. '","event":"Product Viewed","properties":{"sku":"SHOE-42","pad":"' .. pad .. '"},"context":{"library":{"name":"wrk"}}}'
  return wrk.format(nil, "/v1/track", nil, body)
end
