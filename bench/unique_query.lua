-- wrk script: every request a query string never seen before (a counter in an
-- extra parameter the service ignores), so no parsed-query memo or response
-- cache can answer it: the full path of a first request.
counter = 0
request = function()
   counter = counter + 1
   return wrk.format("GET", wrk.path .. "&nonce=" .. counter)
end
