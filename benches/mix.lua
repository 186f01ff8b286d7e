-- wrk script: cycles through the calls listed in $MIX (one path per line) with the bearer
-- token in $TOKEN, each thread starting at a different place.
local paths = {}
for line in io.lines(os.getenv("MIX")) do
  paths[#paths + 1] = line
end
local headers = { ["Authorization"] = "Bearer " .. os.getenv("TOKEN") }
local i = 0

function setup(thread)
  i = i + 1
  thread:set("start", i * 7)
end

function init(args)
  i = start or 0
end

function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
