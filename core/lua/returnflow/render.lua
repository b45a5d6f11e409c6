--- Renders the part of Klaviyo's Django-like email template language our notification emails use.
-- Two uses: a merchant previews an email locally (`render.compile(text, name):render(context)`), and a
-- lint checks that every `event.X` a template reads is a property the mapping emits (`tpl:variables()`).
-- A template compiles once into a tree of closures; rendering walks the tree and never re-parses.
--
-- As in Klaviyo, a missing variable renders as "" and is never an error; unlike Klaviyo, `render` also
-- returns the missing paths, so a preview says what a real send would lack. Choices where Klaviyo's
-- output cannot be checked locally:
--  * numbers print as Python prints what Klaviyo decoded from JSON: an integer as "12", a float as its
--    shortest round-trip digits with a point ("118.8"; 118.0 stays "118.0", as in Python);
--  * true/false print "True"/"False"; null and missing print ""; a list prints its items joined by ", ";
--  * HTML mode (the default; `opts.escape = false` for subjects and text) escapes & < > " ' as Django
--    does: not after |safe, nor a literal string, nor |join's result (which escapes its items);
--  * |date shows times in UTC, and upper/lower/title/capfirst change ASCII letters only.
-- It does not do {% include %}, {% with %}, {% for a, b in ... %}, custom tags, or parentheses in
-- conditions (Django has none); such templates fail to compile with the line of the tag.
-- @module returnflow.render
local M = {}

local format, concat, sort = string.format, table.concat, table.sort
local type, tonumber, next, pairs, select = type, tonumber, next, pairs, select
local math_type, tointeger, floor = math.type, math.tointeger, math.floor

local NO_NULL = {}                      -- a render state for helpers used at compile time

-- Compile errors carry their line; compile() turns them into "name:line: message".
local function fail(line, message, ...)
  error({ line = line, message = format(message, ...) }, 0)
end

------------------------------------------------------------------------------------------------ values

local function is_none(v, st) return v == nil or v == st.null end

-- Django's truth: missing, null, false, 0, "" and an empty list or object are false.
local function truthy(v, st)
  if v == nil or v == false or v == 0 or v == "" or v == st.null then return false end
  if type(v) == "table" then return next(v) ~= nil end
  return true
end

-- Python's repr of a float: the shortest digits that read back as the same number, with a point.
local function float_text(x)
  if x ~= x then return "nan" end
  if x == math.huge or x == -math.huge then return x > 0 and "inf" or "-inf" end
  local text
  for digits = 15, 17 do
    text = format("%." .. digits .. "g", x)
    if tonumber(text) == x then break end
  end
  return text:find("[.e]") and text or text .. ".0"
end

local function to_text(v, st)
  local kind = type(v)
  if kind == "string" then return v end
  if kind == "number" then return math_type(v) == "integer" and format("%d", v) or float_text(v) end
  if kind == "boolean" then return v and "True" or "False" end
  if kind == "table" and v ~= st.null then
    local items = {}
    for i = 1, #v do items[i] = to_text(v[i], st) end
    return concat(items, ", ")
  end
  return ""
end

local HTML = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#x27;" }
local function escape_html(text) return (text:gsub("[&<>\"']", HTML)) end

-- t[key], or for a numeric key the 0-based list item as Django indexes ("names.0" is names[1]).
local function lookup_key(t, key, st)
  if type(t) ~= "table" or t == st.null then return nil end
  local found = t[key]
  local number = found == nil and tonumber(key)
  if number and tointeger(number) then found = t[tointeger(number) + 1] end
  if found == st.null then return nil end
  return found
end

---------------------------------------------------------------------------------------- floatformat

-- A number or numeric text as sign, integer digits and fraction digits: "-1.5e2" → "-", "150", "".
local function decimal_parts(v)
  local text = type(v) == "number" and to_text(v, NO_NULL) or v
  if type(text) ~= "string" then return nil end
  local sign, int, frac, exp = text:match("^%s*([+-]?)(%d*)%.?(%d*)[eE]([+-]?%d+)%s*$")
  if not sign then
    sign, int, frac = text:match("^%s*([+-]?)(%d*)%.?(%d*)%s*$")
    exp = "0"
  end
  exp = tonumber(exp)
  if not sign or int .. frac == "" or exp > 400 or exp < -400 then return nil end
  local digits, point = int .. frac, #int + exp
  if point < 0 then digits, point = ("0"):rep(-point) .. digits, 0 end
  if point > #digits then digits = digits .. ("0"):rep(point - #digits) end
  return sign, digits:sub(1, point), digits:sub(point + 1)
end

-- Rounds decimal digits half up to `places` decimals (Django quantizes with ROUND_HALF_UP).
local function round_half_up(int, frac, places)
  frac = frac .. ("0"):rep(places)
  local kept = int .. frac:sub(1, places)
  if frac:sub(places + 1, places + 1) >= "5" then
    local i = #kept
    while i > 0 and kept:sub(i, i) == "9" do i = i - 1 end
    kept = (i == 0 and "1" or kept:sub(1, i - 1) .. (kept:byte(i) - 47)) .. ("0"):rep(#kept - i)
  end
  local whole = kept:sub(1, #kept - places):gsub("^0+", "")
  return whole == "" and "0" or whole, kept:sub(#kept - places + 1)
end

-- Django: no arg → one decimal only if needed; N → exactly N; -N → N decimals unless it is whole.
local function floatformat(v, arg, st)
  local sign, int, frac = decimal_parts(v)
  if not sign then return "" end
  local places = -1
  if arg ~= nil then places = tonumber(arg) and tointeger(tonumber(arg)) end
  if not places then return to_text(v, st) end
  if places < 0 and not frac:find("[1-9]") then frac, places = "", 0 end
  local whole, decimals = round_half_up(int, frac, places < 0 and -places or places)
  if sign == "+" or not (whole .. decimals):find("[1-9]") then sign = "" end
  return sign .. whole .. (decimals ~= "" and "." .. decimals or "")
end

--------------------------------------------------------------------------------------------- dates

local MONTHS = { "January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December" }
local AP_MONTHS = { "Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.",
  "Dec." }
local WEEKDAYS = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" }
local UNSUPPORTED_DATE_CODES = "BcEeILoOrTtuWzZ"      -- Django's format characters we do not render

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local year_of_era = y - era * 400
  local day_of_year = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  return era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468
end

-- Seconds since 1970 (UTC) of an epoch number or an ISO 8601 text ("2026-10-30",
-- "2026-10-02T14:11:09Z", "2026-10-02T14:11:09.123+00:00"; no zone means UTC); nil otherwise.
local function epoch_of(v)
  if type(v) == "number" then return (v == v and v > -6e10 and v < 2.5e11) and floor(v) or nil end
  if type(v) ~= "string" then return nil end
  local y, mo, d, rest = v:match("^%s*(%d%d%d%d)-(%d%d)-(%d%d)(.-)%s*$")
  if not y then return nil end
  local h, mi, s, offset = 0, 0, 0, 0
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh then return nil end
    local ss, after = tail:match("^:(%d%d)(.*)$")
    tail = (after or tail):gsub("^[.,]%d+", "")
    h, mi, s = tonumber(hh), tonumber(mm), tonumber(ss or 0)
    if tail ~= "Z" and tail ~= "z" and tail ~= "" then
      local sign, zh, zm = tail:match("^([+-])(%d%d):?(%d%d)$")
      if not sign then return nil end
      offset = (tonumber(zh) * 3600 + tonumber(zm) * 60) * (sign == "-" and -1 or 1)
    end
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
end

local function hour12(t) return (t.hour + 11) % 12 + 1 end
local function am_pm(t) return t.hour < 12 and "a.m." or "p.m." end
local function hour_minutes(t) return t.min == 0 and format("%d", hour12(t)) or format("%d:%02d", hour12(t), t.min) end

local DATE_CODES = {
  Y = function(t) return format("%04d", t.year) end, y = function(t) return format("%02d", t.year % 100) end,
  m = function(t) return format("%02d", t.month) end, n = function(t) return format("%d", t.month) end,
  d = function(t) return format("%02d", t.day) end, j = function(t) return format("%d", t.day) end,
  F = function(t) return MONTHS[t.month] end, M = function(t) return MONTHS[t.month]:sub(1, 3) end,
  b = function(t) return MONTHS[t.month]:sub(1, 3):lower() end, N = function(t) return AP_MONTHS[t.month] end,
  l = function(t) return WEEKDAYS[t.wday] end, D = function(t) return WEEKDAYS[t.wday]:sub(1, 3) end,
  w = function(t) return format("%d", t.wday - 1) end,
  H = function(t) return format("%02d", t.hour) end, G = function(t) return format("%d", t.hour) end,
  h = function(t) return format("%02d", hour12(t)) end, g = function(t) return format("%d", hour12(t)) end,
  i = function(t) return format("%02d", t.min) end, s = function(t) return format("%02d", t.sec) end,
  A = function(t) return t.hour < 12 and "AM" or "PM" end, a = am_pm, f = hour_minutes,
  P = function(t)
    if t.min == 0 and t.hour % 12 == 0 then return t.hour == 0 and "midnight" or "noon" end
    return hour_minutes(t) .. " " .. am_pm(t)
  end,
  S = function(t)
    if t.day >= 11 and t.day <= 13 then return "th" end
    return ({ "st", "nd", "rd" })[t.day % 10] or "th"
  end,
  U = function(t) return format("%d", t.epoch) end,
}

local function format_date(v, fmt, st)
  local epoch = epoch_of(v)
  if not epoch then return "" end
  local t = os.date("!*t", epoch)
  t.epoch = epoch
  return (to_text(fmt or "N j, Y", st):gsub("\\?.", function(code)
    if #code == 2 then return code:sub(2) end
    return DATE_CODES[code] and DATE_CODES[code](t) or code
  end))
end

local function check_date_format(fmt, line)
  for escaped, code in fmt:gmatch("(\\?)(.)") do
    if escaped == "" and UNSUPPORTED_DATE_CODES:find(code, 1, true) then
      fail(line, "date format character '%s' is not supported", code)
    end
  end
end

------------------------------------------------------------------------------------------- filters

local LETTER = "[%a\128-\255]"

-- Django's title: each word's first letter up, but not after a digit ("1st") nor inside "they're".
local function title_case(text)
  text = text:lower()
  return (text:gsub("()(%l)", function(at, letter)
    local before = text:sub(at - 1, at - 1)
    if before:find(LETTER) or before:find("%d") then return nil end
    if before == "'" and at > 3 and text:sub(at - 3, at - 2):find("^" .. LETTER .. LETTER) then return nil end
    return letter:upper()
  end))
end

-- Python's int(): truncates a float, reads an integer text, refuses anything else.
local function whole_number(v)
  if type(v) == "number" then return tointeger(v >= 0 and floor(v) or math.ceil(v)) end
  local digits = type(v) == "string" and v:match("^%s*([+-]?%d+)%s*$")
  return digits and tointeger(tonumber(digits)) or nil
end

local function split_commas(text)
  local parts = {}
  for part in (text .. ","):gmatch("([^,]*),") do parts[#parts + 1] = part end
  return parts
end

local function length(v, _, st)
  if type(v) == "string" then return utf8.len(v) or #v end
  if type(v) ~= "table" or v == st.null then return 0 end
  local count = #v
  if count == 0 then for _ in pairs(v) do count = count + 1 end end
  return count
end

-- Each filter: run(value, arg, st) → value, how; how is "safe" (mark safe), "arg" (the argument
-- was chosen: safe if it was a literal string) or nil (stay safe only if keeps_safe, as Django's is_safe).
local FILTERS = {
  default = { arg = "required", keeps_safe = true,
    run = function(v, arg, st) if truthy(v, st) then return v end return arg, "arg" end },
  default_if_none = { arg = "required", keeps_safe = true,
    run = function(v, arg, st) if is_none(v, st) then return arg, "arg" end return v end },
  lookup = { arg = "required", run = lookup_key },
  floatformat = { arg = "optional", keeps_safe = true, run = floatformat },
  date = { arg = "optional", run = format_date },
  upper = { run = function(v, _, st) return to_text(v, st):upper() end },
  lower = { keeps_safe = true, run = function(v, _, st) return to_text(v, st):lower() end },
  title = { keeps_safe = true, run = function(v, _, st) return title_case(to_text(v, st)) end },
  capfirst = { keeps_safe = true, run = function(v, _, st) return (to_text(v, st):gsub("^%l", string.upper)) end },
  length = { run = length },
  first = { run = function(v, _, st)
    if type(v) == "string" then return v:match("^" .. utf8.charpattern) end
    if type(v) ~= "table" or v == st.null then return "" end
    return v[1]
  end },
  last = { keeps_safe = true, run = function(v, _, st)
    if type(v) == "string" then return v:match(utf8.charpattern .. "$") end
    return type(v) == "table" and v ~= st.null and v[#v] or ""
  end },
  join = { arg = "required", run = function(v, separator, st)
    if type(v) ~= "table" or v == st.null then return v end
    local items = {}
    for i = 1, #v do items[i] = st.escape and escape_html(to_text(v[i], st)) or to_text(v[i], st) end
    return concat(items, to_text(separator, st)), "safe"
  end },
  safe = { run = function(v) return v, "safe" end },
  striptags = { keeps_safe = true, run = function(v, _, st)
    local text, count = to_text(v, st), 1
    while count > 0 do text, count = text:gsub("<[^>]*>", "") end
    return text
  end },
  truncatechars = { arg = "required", keeps_safe = true, run = function(v, limit, st)
    local text = to_text(v, st)
    limit = whole_number(limit)
    if not limit then return text end
    if limit <= 0 then return "" end
    if (utf8.len(text) or #text) <= limit then return text end
    return text:sub(1, (utf8.len(text) and utf8.offset(text, limit) or limit) - 1) .. "…"
  end },
  add = { arg = "required", run = function(v, arg, st)
    local a, b = whole_number(v), whole_number(arg)
    if a and b then return a + b end
    if type(v) == "string" and type(arg) == "string" then return v .. arg end
    if type(v) == "table" and type(arg) == "table" and v ~= st.null and arg ~= st.null then
      return table.move(arg, 1, #arg, #v + 1, table.move(v, 1, #v, 1, {}))
    end
    return ""
  end },
  pluralize = { arg = "optional", run = function(v, arg, st)
    local bits = split_commas(arg and to_text(arg, st) or "s")
    if #bits == 1 then bits = { "", bits[1] } end
    if #bits > 2 then return "" end
    local count = type(v) == "number" and v or type(v) == "string" and tonumber(v)
    if type(v) == "table" and v ~= st.null then count = #v end
    if not count then return "" end
    return count == 1 and bits[1] or bits[2]
  end },
  yesno = { arg = "optional", run = function(v, arg, st)
    local bits = split_commas(arg and to_text(arg, st) or "yes,no,maybe")
    if #bits < 2 then return v end
    if is_none(v, st) then return #bits == 3 and bits[3] or bits[2] end
    return truthy(v, st) and bits[1] or bits[2]
  end },
  urlencode = { arg = "optional", run = function(v, safe_chars, st)
    local keep = "%w_.~%-" .. (to_text(safe_chars or "/", st):gsub("%W", "%%%0"))
    return (to_text(v, st):gsub("[^" .. keep .. "]", function(c) return format("%%%02X", c:byte()) end))
  end },
}

--------------------------------------------------------------------------------------- expressions

local FORLOOP = {
  counter = function(f) return f.index end, counter0 = function(f) return f.index - 1 end,
  revcounter = function(f) return f.length - f.index + 1 end, revcounter0 = function(f) return f.length - f.index end,
  first = function(f) return f.index == 1 end, last = function(f) return f.index == f.length end,
}

-- A getter for a dotted path, and the path it reads as the lint names it: a loop variable reads its
-- source ("item.title" in a loop over event.items reads "event.items[].title").
local function compile_path(c, segments, line)
  local head, binding = segments[1], nil
  for i = #c.scope, 1, -1 do
    if c.scope[i].name == head then binding = c.scope[i] break end
  end
  if head == "forloop" and not binding and c.depth > 0 then
    local field, depth = FORLOOP[segments[2] or ""], c.depth
    if not field or #segments > 2 then fail(line, "'%s' is not a forloop variable", concat(segments, ".")) end
    return function(st) return field(st.frames[depth]) end
  end
  local keys, indexes = {}, {}
  for i = binding and 2 or 1, #segments do
    keys[#keys + 1] = segments[i]
    indexes[#keys] = segments[i]:find("^%d+$") and tonumber(segments[i]) + 1 or false
  end
  local n, path = #keys, concat(keys, ".")
  if binding then path = binding.source .. "[]" .. (n > 0 and "." .. path or "") end
  if n > 0 then c.vars[path] = true end
  local function walk(value, st)                -- a path through a null is null, not missing
    for i = 1, n do
      if value == st.null then return nil end
      if type(value) ~= "table" then st.missing[path] = true return nil end
      local found = value[keys[i]]
      if found == nil and indexes[i] then found = value[indexes[i]] end
      if found == nil then st.missing[path] = true return nil end
      value = found
    end
    if value == st.null then return nil end
    return value
  end
  if binding then
    local depth = binding.depth
    return function(st) return walk(st.frames[depth].item, st) end, path
  end
  return function(st) return walk(st.ctx, st) end, path
end

-- One operand at `pos`: a quoted string, a number, True/False/None, or a dotted path.
local function read_atom(text, pos, line)
  local quote = text:match("^[\"']", pos)
  if quote then
    local close = text:find(quote, pos + 1, true) or fail(line, "unterminated string in '%s'", text)
    return { literal = true, value = text:sub(pos + 1, close - 1) }, close + 1
  end
  local number = text:match("^[+-]?%d+%.?%d*", pos) or text:match("^[+-]?%.%d+", pos)
  if number then return { literal = true, value = tonumber(number) }, pos + #number end
  local path = text:match("^[%a_][%w_.]*", pos)
  if not path then return nil, pos end
  if path == "True" or path == "False" then return { literal = true, value = path == "True" }, pos + #path end
  if path == "None" then return { literal = true }, pos + 4 end
  if path:find("%.%.") or path:find("%.$") then fail(line, "bad variable name '%s'", path) end
  local segments = {}
  for segment in path:gmatch("[^.]+") do segments[#segments + 1] = segment end
  return { segments = segments }, pos + #path
end

-- `value|filter|filter:arg` → evaluate(st) returning value, safe; and the path it reads, if any.
local function compile_expression(c, text, line)
  local root, pos = read_atom(text, 1, line)
  if not root then fail(line, "expected a value, found '%s'", text) end
  local filters = {}
  while true do
    local bar = text:match("^%s*|%s*()", pos)
    if not bar then break end
    local filter = { name = text:match("^[%a_][%w_]*", bar) or fail(line, "expected a filter name in '%s'", text) }
    pos = bar + #filter.name
    if text:sub(pos, pos) == ":" then
      filter.arg, pos = read_atom(text, pos + 1, line)
      if not filter.arg then fail(line, "filter '%s' needs a value after ':'", filter.name) end
    end
    filters[#filters + 1] = filter
  end
  if text:find("%S", pos) then fail(line, "unexpected '%s' in '%s'", text:sub(pos), text) end

  local first = 1                               -- person|lookup:'First Name' reads "person.First Name"
  while root.segments and filters[first] and filters[first].name == "lookup" and (filters[first].arg or {}).literal do
    root.segments[#root.segments + 1] = to_text(filters[first].arg.value, NO_NULL)
    first = first + 1
  end
  local get_root, path
  if root.segments then get_root, path = compile_path(c, root.segments, line) end
  local chain = {}
  for i = first, #filters do
    local f = filters[i]
    local spec = FILTERS[f.name] or fail(line, "unknown filter '%s'", f.name)
    if f.arg and not spec.arg then fail(line, "filter '%s' takes no argument", f.name) end
    if not f.arg and spec.arg == "required" then fail(line, "filter '%s' needs an argument", f.name) end
    local link = { run = spec.run, keeps_safe = spec.keeps_safe }
    if f.arg and f.arg.segments then link.get_arg = compile_path(c, f.arg.segments, line)
    elseif f.arg then link.arg, link.arg_safe = f.arg.value, type(f.arg.value) == "string" end
    if f.name == "date" and type(link.arg) == "string" then check_date_format(link.arg, line) end
    chain[#chain + 1] = link
  end
  local n, root_value, root_safe = #chain, root.value, type(root.value) == "string"
  return function(st)
    local value, safe = root_value, root_safe
    if get_root then value, safe = get_root(st), false end
    for i = 1, n do
      local link, how = chain[i], nil
      local arg = link.arg
      if link.get_arg then arg = link.get_arg(st) end
      value, how = link.run(value, arg, st)
      if how == "safe" then safe = true
      elseif how == "arg" then safe = link.arg_safe or false
      elseif not link.keeps_safe then safe = false end
    end
    return value, safe
  end, path
end

---------------------------------------------------------------------------------------- conditions

local function same(a, b, st)
  if is_none(a, st) then return is_none(b, st) end
  return a == b
end

local function ordered(a, b)
  local ta, tb = type(a), type(b)
  return ta == tb and (ta == "number" or ta == "string")
end

local function contains(container, item, st)
  if type(container) == "string" then return type(item) == "string" and container:find(item, 1, true) ~= nil end
  if type(container) ~= "table" or container == st.null then return false end
  for i = 1, #container do
    if same(container[i], item, st) then return true end
  end
  return item ~= nil and container[item] ~= nil
end

local COMPARE = {
  ["=="] = same, ["!="] = function(a, b, st) return not same(a, b, st) end,
  ["<"] = function(a, b) return ordered(a, b) and a < b end, [">"] = function(a, b) return ordered(a, b) and a > b end,
  ["<="] = function(a, b) return ordered(a, b) and a <= b end, [">="] = function(a, b) return ordered(a, b) and a >= b end,
  ["in"] = function(a, b, st) return contains(b, a, st) end,
  ["not in"] = function(a, b, st) return not contains(b, a, st) end,
}
local KEYWORDS = { ["and"] = true, ["or"] = true, ["not"] = true, ["in"] = true }

-- Splits a condition into operators and operands; an operand may hold filters and quoted arguments.
local function split_condition(text, line)
  local tokens, pos = {}, 1
  while true do
    pos = text:find("%S", pos)
    if not pos then return tokens end
    local start = pos
    local operator = text:match("^[=!<>]=", pos) or text:match("^[<>]", pos)
    if operator then pos = pos + #operator end
    while not operator and pos <= #text do
      local ch = text:sub(pos, pos)
      if ch == "'" or ch == '"' then
        pos = (text:find(ch, pos + 1, true) or fail(line, "unterminated string in {%% if %s %%}", text)) + 1
      elseif ch:find("%s") then                 -- spaces around '|' stay inside the operand
        local after = text:find("%S", pos)
        if not (after and (text:sub(after, after) == "|" or text:sub(pos - 1, pos - 1) == "|")) then break end
        pos = after
      elseif ch:find("[=!<>]") then break
      else pos = pos + 1 end
    end
    if pos == start then fail(line, "unexpected '%s' in {%% if %s %%}", text:sub(pos, pos), text) end
    tokens[#tokens + 1] = text:sub(start, pos - 1)
  end
end

-- Django's precedence: or < and < not < comparisons and in.
local function compile_condition(c, text, line)
  local tokens, i = split_condition(text, line), 1
  if #tokens == 0 then fail(line, "{%% if %%} needs a condition") end
  local function operand()
    local token = tokens[i]
    if not token or KEYWORDS[token] or COMPARE[token] then
      fail(line, "expected a value %s in {%% if %s %%}", token and "before '" .. token .. "'" or "at the end", text)
    end
    i = i + 1
    return (compile_expression(c, token, line))
  end
  local function comparison()
    local left = operand()
    local operator = tokens[i]
    if operator == "not" and tokens[i + 1] == "in" then operator, i = "not in", i + 1 end
    local compare = COMPARE[operator]
    if not compare then return function(st) return truthy(left(st), st) end end
    i = i + 1
    local right = operand()
    return function(st) return compare(left(st), right(st), st) end
  end
  local function negation()
    if tokens[i] ~= "not" then return comparison() end
    i = i + 1
    local inner = negation()
    return function(st) return not inner(st) end
  end
  local function chain(word, operand_of)
    local left = operand_of()
    while tokens[i] == word do
      i = i + 1
      local a, b = left, operand_of()
      if word == "and" then left = function(st) return a(st) and b(st) end
      else left = function(st) return a(st) or b(st) end end
    end
    return left
  end
  local condition = chain("or", function() return chain("and", negation) end)
  if tokens[i] then fail(line, "unexpected '%s' in {%% if %s %%}", tokens[i], text) end
  return condition
end

------------------------------------------------------------------------------------------ template

local CLOSERS = { ["{"] = "}}", ["%"] = "%}", ["#"] = "#}" }
local function count_lines(text) return select(2, text:gsub("\n", "")) end

-- Text and tags, each tag with the line it starts on; and the template's last line.
local function scan(text)
  local tokens, pos, line = {}, 1, 1
  while true do
    local open, kind = text:match("(){([{%%#])", pos)
    local literal = text:sub(pos, open and open - 1 or -1)
    if literal ~= "" then tokens[#tokens + 1] = { kind = "text", body = literal } end
    line = line + count_lines(literal)
    if not open then return tokens, text:sub(-1) == "\n" and line > 1 and line - 1 or line end
    local close = text:find(CLOSERS[kind], open + 2, true)
    if not close then fail(line, "'{%s' is never closed by '%s'", kind, CLOSERS[kind]) end
    local body = text:sub(open + 2, close - 1)
    tokens[#tokens + 1] = { kind = kind, body = body:match("^%s*(.-)%s*$"), line = line }
    line = line + count_lines(body)
    pos = close + 2
  end
end

local function emit(st, text)
  local n = st.n + 1
  st.n, st.buf[n] = n, text
end

local function sequence(nodes)
  local n = #nodes
  if n == 1 then return nodes[1] end
  return function(st) for i = 1, n do nodes[i](st) end end
end

local TAGS = {}
local STRAY = { endif = "if", elif = "if", ["else"] = "if", endfor = "for", empty = "for", endcomment = "comment" }

-- Nodes up to a tag in `ends` (returned with its word and the rest of its text), or the end.
local function compile_nodes(c, ends)
  local nodes = {}
  while true do
    local token = c.tokens[c.i]
    if not token then return nodes end
    c.i = c.i + 1
    if token.kind == "text" then
      local text = token.body
      nodes[#nodes + 1] = function(st) emit(st, text) end
    elseif token.kind == "{" then
      if token.body == "" then fail(token.line, "empty {{ }}") end
      local evaluate = compile_expression(c, token.body, token.line)
      nodes[#nodes + 1] = function(st)
        local value, safe = evaluate(st)
        local text = to_text(value, st)
        emit(st, (st.escape and not safe) and escape_html(text) or text)
      end
    elseif token.kind == "%" then
      local word, rest = token.body:match("^(%S*)%s*(.-)$")
      if ends and ends[word] then return nodes, token, word, rest end
      if TAGS[word] then nodes[#nodes + 1] = TAGS[word](c, token, rest)
      elseif STRAY[word] then fail(token.line, "{%% %s %%} without a matching {%% %s %%}", word, STRAY[word])
      else fail(token.line, "unknown tag {%% %s %%}", word) end
    end
  end
end

local function compile_block(c, ends, opener)
  local nodes, ender, word, rest = compile_nodes(c, ends)
  if not ender then
    fail(c.last_line, "{%% %s %%} opened at line %d is never closed", opener.body:match("^%S*"), opener.line)
  end
  return sequence(nodes), word, rest, ender.line
end

TAGS["if"] = function(c, opener, text)
  local conditions, bodies, line, otherwise = {}, {}, opener.line, nil
  repeat
    conditions[#conditions + 1] = compile_condition(c, text, line)
    local body, word, rest, at = compile_block(c, { elif = true, ["else"] = true, endif = true }, opener)
    bodies[#bodies + 1], text, line = body, rest, at
    if word == "else" then otherwise = compile_block(c, { endif = true }, opener) end
  until word ~= "elif"
  local n = #conditions
  return function(st)
    for i = 1, n do
      if conditions[i](st) then return bodies[i](st) end
    end
    if otherwise then otherwise(st) end
  end
end

TAGS["for"] = function(c, opener, text)
  local name, source_text = text:match("^([%a_][%w_]*)%s+in%s+(.-)$")
  if not name then fail(opener.line, "expected {%% for name in list %%}, found {%% for %s %%}", text) end
  local get_list, source = compile_expression(c, source_text, opener.line)
  c.depth = c.depth + 1
  local depth = c.depth
  c.scope[#c.scope + 1] = { name = name, source = source or name, depth = depth }
  local body, word = compile_block(c, { empty = true, endfor = true }, opener)
  c.scope[#c.scope], c.depth = nil, depth - 1
  local empty = word == "empty" and compile_block(c, { endfor = true }, opener) or nil
  return function(st)
    local list = get_list(st)
    local count = type(list) == "table" and list ~= st.null and #list or 0
    if count == 0 then
      if empty then empty(st) end
      return
    end
    local frame = { length = count }
    st.frames[depth] = frame
    for i = 1, count do
      frame.index, frame.item = i, list[i]
      body(st)
    end
  end
end

TAGS["comment"] = function(c, opener)          -- skipped unparsed, as Django does
  for i = c.i, #c.tokens do
    local token = c.tokens[i]
    if token.kind == "%" and token.body:match("^%S*") == "endcomment" then
      c.i = i + 1
      return nil
    end
  end
  fail(c.last_line, "{%% comment %%} opened at line %d is never closed", opener.line)
end

local Template = {}
Template.__index = Template

--- Compiles a template once, for any number of renders.
-- @tparam string text the template
-- @tparam[opt="template"] string name shown in error messages, e.g. "return-confirmation/email.html"
-- @return a template, or nil and "name:line: message" for a syntax error, an unknown tag or filter
function M.compile(text, name)
  name = name or "template"
  local ok, result = pcall(function()
    local tokens, last_line = scan(text)
    local c = { tokens = tokens, i = 1, last_line = last_line, scope = {}, depth = 0, vars = {} }
    local root = sequence(compile_nodes(c))
    local variables = {}
    for path in pairs(c.vars) do variables[#variables + 1] = path end
    sort(variables)
    return setmetatable({ root = root, variable_list = variables }, Template)
  end)
  if ok then return result end
  if type(result) == "table" and result.message then return nil, format("%s:%d: %s", name, result.line, result.message) end
  error(result, 0)
end

--- Renders with a context such as `{ event = {...}, person = {...}, organization = {...} }`.
-- @tparam table context the variables
-- @tparam[opt] table opts `escape` (default true: HTML; false for a subject or text part) and `null`
--   (the JSON null sentinel: present but null, rendered as "" and not reported missing)
-- @treturn string the text
-- @treturn {string,...} the paths looked up and absent, sorted, e.g. { "event.return_by" }
function Template:render(context, opts)
  opts = opts or {}
  local st = { ctx = context or {}, null = opts.null, escape = opts.escape ~= false,
    buf = {}, n = 0, frames = {}, missing = {} }
  self.root(st)
  local missing = {}
  for path in pairs(st.missing) do missing[#missing + 1] = path end
  sort(missing)
  return concat(st.buf, "", 1, st.n), missing
end

--- Every variable path the template can read, sorted: "event.items" and "event.items[].title" for a
-- loop over event.items that shows item.title; "event.Return By" for `event|lookup:'Return By'`.
-- @treturn {string,...}
function Template:variables()
  return table.move(self.variable_list, 1, #self.variable_list, 1, {})
end

return M
