-- wrk script for benchmarks/throughput.py: replay a population's tokens in order.
-- Arguments: the token file (one token per line), the index to start at, and the
-- number of wrk threads; thread k sends tokens start+k, start+k+threads, ...
local threads_started = 0

function setup(thread)
  thread:set("id", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = "Bearer " .. line
  end
  step = tonumber(args[3])
  index = tonumber(args[2]) + id
end

function request()
  local token = tokens[(index % #tokens) + 1]
  index = index + step
  return wrk.format(nil, nil, { ["Authorization"] = token })
end
