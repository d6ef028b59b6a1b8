-- Drives one scenario: a request template whose every "{id}" becomes a seeded entity (consecutive
-- ones from a random start, so a batch reads distinct entities), and a JSON summary (throughput,
-- percentiles in microseconds, errors) printed at the end.
local method = os.getenv("BENCH_METHOD") or "GET"
local path_template = os.getenv("BENCH_PATH")
local body_file = os.getenv("BENCH_BODY_FILE")
local entities = tonumber(os.getenv("BENCH_ENTITIES") or "1")
local body_template = nil
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "r"))
  body_template = f:read("*a")
  f:close()
end
local headers = {["Content-Type"] = "application/json"}
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  headers["Authorization"] = authorization
end

local idempotency_keys = os.getenv("BENCH_IDEMPOTENCY_KEYS") == "1"
local key_prefix = ""
local key_count = 0

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  key_prefix = string.format("bench-%08x-", math.random(0, 0x7fffffff))
end

request = function()
  local next_id = math.random(0, entities - 1)
  local function id()
    local value = "bench-" .. next_id
    next_id = (next_id + 1) % entities
    return value
  end
  local path = path_template:gsub("{id}", id)
  local body = nil
  if body_template then
    body = body_template:gsub("{id}", id)
  end
  if idempotency_keys then
    key_count = key_count + 1
    headers["Idempotency-Key"] = key_prefix .. key_count
  end
  return wrk.format(method, path, headers, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
