-- wrk script: a mixed load (PERF.md's tile, a page, a pull, errors) and a
-- count of answers by status, written as one JSON line at the end.
local paths = {
   "/api/prices?start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead",
   "/api/prices?start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead",
   "/api/prices?start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NORTH,HB_HOUSTON&price_type=day_ahead",
   "/api/prices?start_date=2024-07-01&end_date=2024-07-31&hubs=HB_NORTH,HB_WEST,LZ_HOUSTON,LZ_NORTH&price_type=rt&resolution=15min",
   "/api/prices?start_date=2024-01-01&end_date=2024-03-31&hubs=HB_NORTH,HB_HOUSTON,HB_SOUTH,HB_WEST,HB_PAN,LZ_AEN,LZ_CPS,LZ_HOUSTON,LZ_LCRA,LZ_NORTH&price_type=combined",
   "/api/prices?start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NOPE&price_type=da",
   "/api/prices?start_date=2024-07-40&end_date=2024-07-14&hubs=HB_NORTH&price_type=da",
   "/api/health",
   "/api/available_hubs",
   "/api/prices?start_date=2024-07-08T00:00:00-05:00&end_date=2024-07-09&hubs=HB_NORTH&price_type=rt&tz=America/Chicago",
}
local counter = 0
statuses = {}
local threads = {}

setup = function(thread)
   table.insert(threads, thread)
end

init = function(args)
   counter = math.random(0, #paths - 1)
   statuses = {}
end

request = function()
   counter = counter + 1
   return wrk.format("GET", paths[(counter % #paths) + 1])
end

response = function(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses")
      for status, count in pairs(counts) do
         total[status] = (total[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(total) do
      table.insert(parts, string.format('"%d": %d', status, count))
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "statuses": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, "p99_ms": %.3f}\n',
      summary.requests, table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(99) / 1000))
end
