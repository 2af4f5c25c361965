-- wrk script: the dashboard tile's week (2024-07-08 to 2024-07-14, Central)
-- moved by one more hour every request, as a dashboard polling "the last
-- week" asks: a new start_date and end_date each time, through 2019-2023
-- (40,000 hours: more than the memo and the response cache hold).
counter = 0
first = 1546840800  -- 2019-01-07T06:00:00Z, Central midnight
request = function()
   counter = counter + 1
   local start = first + 3600 * (counter % 40000)
   local s = os.date("!%Y-%m-%dT%H:%M:%SZ", start)
   local e = os.date("!%Y-%m-%dT%H:%M:%SZ", start + 7 * 86400 - 3600)
   return wrk.format("GET", wrk.path .. "&start_date=" .. s .. "&end_date=" .. e)
end
