-- Request shapes for bench/bench.sh, chosen with WRK_MODE:
--   hot            every request carries the token WRK_TOKEN
--   rotate         WRK_NTOK valid tokens t0000000.., in turn
--   random         a fresh random token that no directory holds (x + 31 characters)
--   unique-random  like random but distinct across the whole run
--   unique-valid   distinct valid tokens t0000000.. (run with -t1)
--   list           the lines of WRK_TOKENS_FILE in turn (run with -t1)
-- With WRK_LIMIT, the thread stops after that many responses and creates WRK_DONE_FILE:
-- wrk itself still waits for its -d, so the caller interrupts it (SIGINT) when it sees the file.
-- Every request also carries WRK_ORIGIN as Origin (a browser always sends one on an upgrade).
-- done() prints one line for the script to parse.

local mode = os.getenv("WRK_MODE") or "hot"
local origin = os.getenv("WRK_ORIGIN")
local ntok = tonumber(os.getenv("WRK_NTOK") or "1000")
local limit = tonumber(os.getenv("WRK_LIMIT") or "0")
local counter, sent = 0, 0
local list = {} -- mode list: the tokens
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local nthread = 0
function setup(thread)
   thread:set("id", nthread)
   nthread = nthread + 1
end

function init(args)
   if origin then wrk.headers["Origin"] = origin end
   if mode == "hot" then
      wrk.headers["Cookie"] = "AUTH=" .. (os.getenv("WRK_TOKEN") or "t0000000")
   end
   math.randomseed(os.time() * 1000 + (id or 0))
   counter = id or 0
   if mode == "list" then
      for line in io.lines(os.getenv("WRK_TOKENS_FILE")) do list[#list + 1] = line end
   end
end

local function random_token()
   local t = { "x" }
   for i = 2, 32 do
      local k = math.random(1, #chars)
      t[i] = chars:sub(k, k)
   end
   return table.concat(t)
end

local function token()
   if mode == "rotate" then
      counter = (counter + 1) % ntok
      return string.format("t%07d", counter)
   elseif mode == "random" then
      return random_token()
   elseif mode == "unique-random" then
      sent = sent + 1
      return string.format("r%d-%d-%s", id or 0, sent, random_token())
   elseif mode == "list" then
      sent = sent % #list + 1
      return list[sent]
   elseif mode == "unique-valid" then
      local t = string.format("t%07d", sent) -- one thread (wrk -t1): no overlap
      sent = sent + 1
      return t
   end
end

if mode ~= "hot" then
   request = function()
      wrk.headers["Cookie"] = "AUTH=" .. token()
      return wrk.format()
   end
end

if limit > 0 then
   local answered = 0
   response = function(status, headers, body)
      answered = answered + 1
      if answered == limit then
         local f = io.open(os.getenv("WRK_DONE_FILE"), "w")
         if f then f:close() end
         wrk.thread:stop()
      end
   end
end

function done(summary, latency, requests)
   io.write(string.format("BENCH requests=%d duration_us=%d p99_us=%d p50_us=%d non2xx=%d errors=%d\n",
      summary.requests, summary.duration, latency:percentile(99.0), latency:percentile(50.0),
      summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
