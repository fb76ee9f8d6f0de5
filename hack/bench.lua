-- wrk script for `make bench` (hack/bench.py): random requests per scenario, JSON summary.
-- Environment: BENCH_MODE = ceiling | book | author | get | reserve | order; BENCH_VALUES = a
-- file with one value a line (book ids as JSON literals, URL-encoded author names, or for
-- `get` whole request paths such as /books?q=word); BENCH_API_KEY for the writes.

local mode = os.getenv("BENCH_MODE") or "ceiling"
local values_path = os.getenv("BENCH_VALUES")
local api_key = os.getenv("BENCH_API_KEY") or ""
local thread_count = 0

local function read_values()
  local values = {}
  if values_path == nil or values_path == "" then
    return values
  end
  for line in io.lines(values_path) do
    if line ~= "" then
      values[#values + 1] = line
    end
  end
  return values
end

local function unquote(literal)
  return (literal:gsub('^"(.*)"$', "%1"))
end

local function build_request(values)
  local value = values[math.random(#values)]
  if mode == "book" then
    return wrk.format("GET", "/books/" .. unquote(value))
  elseif mode == "author" then
    return wrk.format("GET", "/books?author=" .. value)
  elseif mode == "get" then
    return wrk.format("GET", value)
  elseif mode == "reserve" then
    local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = api_key }
    local path = "/books/" .. unquote(value) .. "/reservations"
    return wrk.format("POST", path, headers, '{"quantity":1}')
  elseif mode == "order" then
    local body = '{"customer_name":"Bench Customer","customer_email":"bench@example.com",'
      .. '"items":[{"book_id":' .. value .. ',"quantity":1}]}'
    local headers = { ["Content-Type"] = "application/json", ["X-API-Key"] = api_key }
    return wrk.format("POST", "/orders", headers, body)
  end
  return wrk.format("GET", wrk.path)
end

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

-- Pre-build the requests once per thread: formatting per request would cost wrk's own CPU.
function init(args)
  math.randomseed(os.time() * 1000 + (thread_number or 0))
  local values = read_values()
  requests = {}
  if #values == 0 then
    requests[1] = build_request({ "" })
    return
  end
  for i = 1, 4096 do
    requests[i] = build_request(values)
  end
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
