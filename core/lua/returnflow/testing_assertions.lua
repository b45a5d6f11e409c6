--- luassert assertions for returnflow.testing results, with failure messages that show the diff.
-- A failing `assert.tracked(result, "Loop Return Created", { order = "#1" })` says what was tracked
-- and, for each event of that metric, which expected field differs and how:
--     no tracked "Loop Return Created" has the expected properties:
--       "Loop Return Created" #1: properties.order: expected "#1", got "#10482"
-- Every assertion also works negated (`assert.is_not.tracked(...)`).
-- @module returnflow.testing_assertions

return function(testing, Result)
  local json = testing.native.json

  local function show(v)
    if v == nil then return "missing" end
    if type(v) == "table" or v == json.null then return (json.encode(v)) end
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
  end

  local function deep_equal(a, b)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end

  -- Lines "path: expected X, got Y" for every field of expected that actual lacks or differs in.
  -- Objects are compared key by key (extra keys in actual are fine); lists must be equal.
  local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    return keys
  end

  local function diff(expected, actual, path, lines)
    for _, k in ipairs(sorted_keys(expected)) do
      local want = expected[k]
      local where = path == "" and tostring(k) or path .. "." .. tostring(k)
      local got = type(actual) == "table" and actual[k] or nil
      if type(want) == "table" and #want == 0 and next(want) and type(got) == "table" then
        diff(want, got, where, lines)
      elseif not deep_equal(want, got) then
        lines[#lines + 1] = string.format("%s: expected %s, got %s", where, show(want), show(got))
      end
    end
    return lines
  end
  testing.diff = diff

  -- Finds the first candidate with no difference; else explains each candidate's differences.
  local function match_any(candidates, label, expected)
    local report = {}
    for i, c in ipairs(candidates) do
      local lines = expected and diff(expected, c, "", {}) or {}
      if #lines == 0 then return true, c end
      report[#report + 1] = string.format("  %s #%d: %s", label(c), i, table.concat(lines, "; "))
    end
    return false, table.concat(report, "\n")
  end

  local function metrics_of(result)
    local names = {}
    for _, e in ipairs(result.events) do names[#names + 1] = string.format("%q", e.metric) end
    return #names > 0 and table.concat(names, ", ") or "nothing"
  end

  local function outcome(result)
    return result.status .. (result.reason and (": " .. result.reason) or "")
  end

  local checks = {}

  function checks.tracked(result, metric, properties)
    local events = result:tracked(metric)
    if #events == 0 then
      return false, string.format("%q was not tracked; tracked: %s (event %s)", metric, metrics_of(result), outcome(result))
    end
    if properties == nil then return true, string.format("%q was tracked", metric) end
    local candidates = {}
    for i, e in ipairs(events) do candidates[i] = { properties = e.properties } end
    local ok, why = match_any(candidates, function() return string.format("%q", metric) end, { properties = properties })
    if ok then return true, string.format("%q was tracked with those properties", metric) end
    return false, string.format("no tracked %q has the expected properties:\n%s", metric, why)
  end

  function checks.scheduled(result, key, properties)
    local candidates = {}
    for _, s in ipairs(result.scheduled) do
      if s.key == key or s.metric == key then candidates[#candidates + 1] = s end
    end
    if #candidates == 0 then
      local keys = {}
      for _, s in ipairs(result.scheduled) do keys[#keys + 1] = string.format("%s (%s)", s.key, s.metric) end
      return false, string.format("nothing scheduled under %q; scheduled: %s", key,
                                  #keys > 0 and table.concat(keys, ", ") or "nothing")
    end
    if properties == nil then return true, string.format("%q was scheduled", key) end
    local views = {}
    for i, s in ipairs(candidates) do views[i] = { key = s.key, properties = s.properties } end
    local ok, why = match_any(views, function(s) return s.key end, { properties = properties })
    if ok then return true, string.format("%q was scheduled as expected", key) end
    return false, string.format("what is scheduled under %q differs:\n%s", key, why)
  end

  local function contains(list, value)
    for _, v in ipairs(list) do if v == value then return true end end
    return false
  end

  function checks.cancelled(result, key)
    if contains(result.cancelled, key) then return true, string.format("%q was cancelled", key) end
    return false, string.format("%q was not cancelled; cancelled: %s", key, show(result.cancelled))
  end

  function checks.segmented(result, name)
    if contains(result.segments_added, name) then return true, string.format("the profile got segment %q", name) end
    return false, string.format("the profile did not get segment %q; added: %s", name, show(result.segments_added))
  end

  function checks.unsegmented(result, name)
    if contains(result.segments_removed, name) then return true, string.format("segment %q was removed", name) end
    return false, string.format("segment %q was not removed; removed: %s", name, show(result.segments_removed))
  end

  function checks.profile_updated(result, attributes)
    local candidates = {}
    for _, e in ipairs(result.events) do candidates[#candidates + 1] = e.profile end
    for _, p in ipairs(result.profiles) do candidates[#candidates + 1] = p.profile end
    if #candidates == 0 then return false, "no request carries a profile (event " .. outcome(result) .. ")" end
    local ok, why = match_any(candidates, function() return "profile" end, attributes)
    if ok then return true, "a profile has those attributes" end
    return false, "no profile has the expected attributes:\n" .. why
  end

  function checks.remembered(result, key, value)
    if result.memory[key] == nil then
      local keys = {}
      for k in pairs(result.memory) do keys[#keys + 1] = k end
      table.sort(keys)
      return false, string.format("%q was not remembered; remembered: %s", key, show(keys))
    end
    if value == nil or deep_equal(value, result.memory[key]) then return true, string.format("%q was remembered", key) end
    return false, string.format("%q: expected %s, got %s", key, show(value), show(result.memory[key]))
  end

  function checks.nothing_sent(result)
    if #result.requests == 0 then return true, "nothing would be sent (event " .. outcome(result) .. ")" end
    local paths = {}
    for _, r in ipairs(result.requests) do
      paths[#paths + 1] = r.method .. " " .. r.path .. (r.schedule_key and " (scheduled as " .. r.schedule_key .. ")" or "")
    end
    return false, string.format("%d request(s) would be sent: %s; tracked: %s", #result.requests,
                                table.concat(paths, ", "), metrics_of(result))
  end

  local function status_check(status)
    return function(result, pattern)
      local reason = result.reason or ""
      local matches = pattern == nil or reason:find(pattern, 1, true)
      if not matches then
        local ok, found = pcall(string.match, reason, pattern)       -- a plain text may not be a valid pattern
        matches = ok and found
      end
      if result.status == status and matches then
        return true, "the event was " .. outcome(result)
      end
      return false, string.format("expected the event %s%s; it was %s", status,
                                  pattern and string.format(" with a reason matching %q", pattern) or "", outcome(result))
    end
  end
  checks.mapped = status_check("mapped")
  checks.dropped = status_check("dropped")
  checks.failed = status_check("failed")
  checks.deferred = status_check("deferred")

  --- Every check is also a plain function: testing.check.tracked(result, ...) -> ok, explanation.
  testing.check = checks
  for name, fn in pairs(checks) do
    Result["is_" .. name] = function(self, ...) return (fn(self, ...)) end
  end

  local ok, luassert = pcall(require, "luassert")
  local say_ok, say = pcall(require, "say")
  if not (ok and say_ok) then return end
  for name, fn in pairs(checks) do
    local key = "assertion.returnflow_" .. name
    say:set(key .. ".positive", "returnflow: assert." .. name .. " failed")
    say:set(key .. ".negative", "returnflow: assert.is_not." .. name .. " failed")
    luassert:register("assertion", name, function(state, arguments)
      if getmetatable(arguments[1]) ~= Result then
        state.failure_message = "the first argument must be a result of scripts:map(...)"
        return not state.mod
      end
      local passed, explanation = fn(table.unpack(arguments, 1, arguments.n))
      state.failure_message = explanation
      return passed
    end, key .. ".positive", key .. ".negative")
  end
end
