-- wrk script for the todo-api benchmark. Each request is authenticated
-- with one of the prepared users' tokens, chosen at random, and addresses
-- one of that user's tasks. SCENARIO picks the request mix; USERS_FILE
-- holds one line per user: "<token> <task id> ...".

local scenario = os.getenv("SCENARIO") or "list"
local users_file = os.getenv("USERS_FILE") or "users.txt"
local users = {}

-- `mixed` keeps the data set the size it started at, so that a long run
-- (the memory soak) measures the service and not ever longer lists: each
-- thread creates its tasks as one user of its own and deletes them again,
-- oldest first, by the ids the 201 answers carry in `Location`.
local created = {}
local creator = nil

local function load_users()
  for line in io.lines(users_file) do
    local fields = {}
    for field in line:gmatch("%S+") do fields[#fields + 1] = field end
    local token = table.remove(fields, 1)
    users[#users + 1] = { auth = "Bearer " .. token, tasks = fields, formatted = {} }
  end
end

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
end

function init(args)
  load_users()
  math.randomseed(os.time() * 1000 + (thread_number or 0))
  creator = users[((thread_number or 1) - 1) % #users + 1]
end

local function list(user)
  return wrk.format("GET", "/api/tasks", { ["Authorization"] = user.auth })
end

local function get(user, task)
  return wrk.format("GET", "/api/tasks/" .. task, { ["Authorization"] = user.auth })
end

local function create(user)
  return wrk.format("POST", "/api/tasks",
    { ["Authorization"] = user.auth, ["Content-Type"] = "application/json" },
    '{"title":"created by the benchmark","description":"wrk"}')
end

local function flip(user, task)
  return wrk.format("PATCH", "/api/tasks/" .. task .. "/complete", { ["Authorization"] = user.auth })
end

local function update(user, task)
  return wrk.format("PUT", "/api/tasks/" .. task,
    { ["Authorization"] = user.auth, ["Content-Type"] = "application/json" },
    '{"title":"updated by the benchmark","description":"wrk"}')
end

-- `page`: the user's line holds one path with its query (a page of a
-- filtered, sorted list) in place of task ids.
local function page(user, path)
  return wrk.format("GET", path, { ["Authorization"] = user.auth })
end

local function signin(user)
  return wrk.format("POST", "/api/auth/signin", { ["Content-Type"] = "application/json" },
    '{"email":"bench-0@bench.example","password":"bench password"}')
end

local function delete_created()
  local path = table.remove(created, 1)
  if not path then return nil end
  return wrk.format("DELETE", path, { ["Authorization"] = creator.auth })
end

local scenarios = {
  list = list, get = get, page = page, create = create, flip = flip, update = update, signin = signin,
  -- 70% reads (35% list, 35% get), 30% writes (10% flip, 10% update,
  -- 5% create, 5% delete). Creates and deletes take turns: the last 10%
  -- deletes the oldest task this thread created if one is waiting, and
  -- creates one otherwise. Drawing them independently let the number of
  -- undeleted tasks wander off like a random walk (345 after 3 minutes),
  -- and that user's list answers, and the server's buffers, grew with it.
  mixed = function(user, task)
    local roll = math.random(100)
    if roll <= 35 then return list(user)
    elseif roll <= 70 then return get(user, task)
    elseif roll <= 80 then return flip(user, task)
    elseif roll <= 90 then return update(user, task)
    else return delete_created() or create(creator) end
  end,
}

if scenario == "mixed" then
  function response(status, headers, body)
    if status == 201 then
      local location = headers["location"] or headers["Location"]
      if location then created[#created + 1] = location end
    end
  end
end

local build = scenarios[scenario]

-- Every scenario but `mixed` sends one of a fixed set of requests (one per
-- user and task), so each is formatted once, on first use, and reused:
-- wrk.format on every request made the load generator spend a fifth more
-- CPU, on the cores it shares with the server and PostgreSQL.
function request()
  local user = users[math.random(#users)]
  local index = math.random(#user.tasks)
  if scenario == "mixed" then return build(user, user.tasks[index]) end
  local formatted = user.formatted[index]
  if not formatted then
    formatted = build(user, user.tasks[index])
    user.formatted[index] = formatted
  end
  return formatted
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"scenario":"%s","requests":%d,"seconds":%.3f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,' ..
    '"non_2xx":%d,"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    scenario, summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
