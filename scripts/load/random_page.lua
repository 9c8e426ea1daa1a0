-- wrk script for scripts/load/alerts.sh: each request asks for a random page among the
-- first PAGES pages of 50 (env PAGES), so most pages are not the one just served.
local pages = tonumber(os.getenv("PAGES") or "1000")

function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

function init(args)
  math.randomseed(seed)
end

function request()
  return wrk.format("GET", "/api/alerts?limit=50&page=" .. math.random(1, pages))
end
