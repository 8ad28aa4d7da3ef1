-- wrk script for benchmarks/throughput.py: replay a population's tokens in order.
-- Arguments: the token file (one token a line, each line padded to the same width),
-- the index to start at, the number of wrk threads, and the line width without its
-- newline.  Thread k sends tokens start+k, start+k+threads, ...; lines are read as
-- they are needed (a seek to the start, no load of the whole file), so a run's start
-- costs the same whatever the population.
local threads_started = 0

function setup(thread)
  thread:set("id", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  file = assert(io.open(args[1], "r"))
  step = tonumber(args[3])
  width = tonumber(args[4]) + 1
  file:seek("set", (tonumber(args[2]) + id) * width)
end

function request()
  local line = file:read(width)
  if line == nil or #line < width then -- past the end: from the start again
    file:seek("set", id * width)
    line = file:read(width)
  end
  file:seek("cur", (step - 1) * width)
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line:match("^(%S+)") })
end
