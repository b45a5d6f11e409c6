--- Renders the part of Klaviyo's Django-like email template language our notification emails use.
-- Two uses: a merchant previews an email locally (`render.compile(text, name):render(context)`), and a
-- lint checks that every `event.X` a template reads is a property the mapping emits (`tpl:variables()`).
-- A template compiles once into a tree of closures; rendering walks the tree and never re-parses.
--
-- As in Klaviyo, a missing variable renders as "" and is never an error; `render` also returns the
-- missing paths, so a preview says what a real send would lack (not those an {% if %} tests, nor
-- those whose first filter is default or default_if_none: there a missing value is planned for).
-- Choices Klaviyo cannot confirm locally:
--  * numbers print as Python prints what Klaviyo decoded from JSON: an integer as "12", a float as its
--    shortest round-trip digits with a point ("118.8"; 118.0 stays "118.0", as in Python);
--  * true/false print "True"/"False"; null and missing print ""; a list prints its items joined by ", ";
--  * HTML mode (the default; `opts.escape = false` for subjects and text) escapes & < > " ' as Django
--    does: not after |safe, nor a literal string, nor |join's result (which escapes its items);
--  * |date shows times in UTC; upper/lower/title/capfirst change ASCII letters only.
-- Not supported (a compile error naming the line): include/with/other tags, `for a, b in`, parentheses
-- in conditions (Django has none either), date format characters other than Y y m n d j N M F D l H i s A P.
-- @module returnflow.render
local M = {}

local format, concat, sort, move = string.format, table.concat, table.sort, table.move
local type, tonumber, next, pairs, select = type, tonumber, next, pairs, select
local math_type, tointeger, floor = math.type, math.tointeger, math.floor

local NO_NULL = {}                      -- a render state for helpers used at compile time

-- Compile errors carry their line; compile() turns them into "name:line: message".
local function fail(line, message, ...) error({ line = line, message = format(message, ...) }, 0) end

------------------------------------------------------------------------------------------ values

local function is_none(v, st) return v == nil or v == st.null end

-- Django's truth: missing, null, false, 0, "" and an empty list or object are false.
local function truthy(v, st)
  if v == nil or v == false or v == 0 or v == "" or v == st.null then return false end
  return type(v) ~= "table" or next(v) ~= nil
end

-- Python's repr of a float: the shortest digits that read back as the same number, with a point.
local function float_text(x)
  if x ~= x or x == math.huge or x == -math.huge then return x ~= x and "nan" or x > 0 and "inf" or "-inf" end
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
  if kind ~= "table" or v == st.null then return "" end
  local items = {}
  for i = 1, #v do items[i] = to_text(v[i], st) end
  return concat(items, ", ")
end

local HTML = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#x27;" }
local function escape_html(text) return (text:gsub("[&<>\"']", HTML)) end

-- t[key], or for a numeric key the 0-based list item, as Django indexes ("names.0" is names[1]).
local function lookup_key(t, key, st)
  if type(t) ~= "table" or t == st.null then return nil end
  local found, index = t[key], tointeger(tonumber(key) or 0.5)
  if found == nil and index then found = t[index + 1] end
  return found
end

-- Python's int(): truncates a float, reads an integer text, refuses anything else.
local function whole_number(v)
  if type(v) == "number" then return tointeger(v >= 0 and floor(v) or math.ceil(v)) end
  local digits = type(v) == "string" and v:match("^%s*([+-]?%d+)%s*$")
  return digits and tointeger(tonumber(digits)) or nil
end

------------------------------------------------------------------------------------- floatformat

-- A number or numeric text as sign, integer digits and fraction digits: "-1.5e2" → "-", "150", "".
local function decimal_parts(v)
  local text = type(v) == "number" and to_text(v, NO_NULL) or v
  if type(text) ~= "string" then return nil end
  local sign, int, frac, exp = text:match("^%s*([+-]?)(%d*)%.?(%d*)[eE]([+-]?%d+)%s*$")
  if not sign then sign, int, frac = text:match("^%s*([+-]?)(%d*)%.?(%d*)%s*$") end
  exp = tonumber(exp or 0)
  if not sign or int .. frac == "" or exp > 400 or exp < -400 then return nil end
  local digits, point = int .. frac, #int + exp
  if point < 0 then digits, point = ("0"):rep(-point) .. digits, 0 end
  digits = digits .. ("0"):rep(point - #digits)
  return sign, digits:sub(1, point), digits:sub(point + 1)
end

-- Django: no arg → one decimal only if needed; N → exactly N; -N → N decimals unless the value is
-- whole. Rounds half up on the decimal digits (Decimal's ROUND_HALF_UP): 1.005 → "1.01".
local function floatformat(v, arg, st)
  local sign, int, frac = decimal_parts(v)
  if not sign then return "" end
  local places = tointeger(arg == nil and -1 or tonumber(arg) or 0.5)
  if not places then return to_text(v, st) end          -- Django returns the input for a bad argument
  if places < 0 and not frac:find("[1-9]") then frac, places = "", 0 end
  places = places < 0 and -places or places
  frac = frac .. ("0"):rep(places)
  local kept = int .. frac:sub(1, places)
  if frac:sub(places + 1, places + 1) >= "5" then
    local i = #kept
    while i > 0 and kept:sub(i, i) == "9" do i = i - 1 end
    kept = (i == 0 and "1" or kept:sub(1, i - 1) .. (kept:byte(i) - 47)) .. ("0"):rep(#kept - i)
  end
  local whole, decimals = kept:sub(1, #kept - places):gsub("^0+", ""), kept:sub(#kept - places + 1)
  whole = whole == "" and "0" or whole
  if sign == "+" or not (whole .. decimals):find("[1-9]") then sign = "" end       -- never "-0"
  return sign .. whole .. (places > 0 and "." .. decimals or "")
end

------------------------------------------------------------------------------------------- dates

local MONTHS = { "January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December" }
local AP_MONTHS = { "Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.", "Dec." }
local WEEKDAYS = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" }

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
  if type(v) == "number" then return (v > -6e10 and v < 2.5e11) and floor(v) or nil end
  local y, mo, d, rest = (type(v) == "string" and v or ""):match("^%s*(%d%d%d%d)-(%d%d)-(%d%d)(.-)%s*$")
  if not y then return nil end
  local h, mi, s, zone = rest:match("^[Tt ](%d%d):(%d%d):?(%d*)[.,]?%d*(.*)$")
  if rest == "" then h, mi, s, zone = 0, 0, "", "" end
  if not h or #s == 1 or #s > 2 then return nil end
  local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
  if not sign and zone ~= "" and zone ~= "Z" and zone ~= "z" then return nil end
  local offset = sign and (tonumber(zh) * 3600 + tonumber(zm) * 60) * (sign == "-" and -1 or 1) or 0
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s) or 0
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
end

-- The date format characters we render are the keys of date_fields; a literal format using one of
-- Django's others fails to compile, so a preview never silently differs from Klaviyo's email.
local UNSUPPORTED_DATE_CODES = "abBceEfgGhILoOrStTuUwWzZ"

local function date_fields(t)
  local hour12, minutes = (t.hour + 11) % 12 + 1, t.min
  local clock = minutes == 0 and format("%d", hour12) or format("%d:%02d", hour12, minutes)
  return {
    Y = format("%04d", t.year), y = format("%02d", t.year % 100), m = format("%02d", t.month),
    n = format("%d", t.month), d = format("%02d", t.day), j = format("%d", t.day), F = MONTHS[t.month],
    M = MONTHS[t.month]:sub(1, 3), N = AP_MONTHS[t.month], l = WEEKDAYS[t.wday], D = WEEKDAYS[t.wday]:sub(1, 3),
    H = format("%02d", t.hour), i = format("%02d", minutes), s = format("%02d", t.sec),
    A = t.hour < 12 and "AM" or "PM",                    -- P: "2:30 p.m.", "3 a.m.", "midnight", "noon"
    P = (minutes == 0 and t.hour % 12 == 0) and (t.hour == 0 and "midnight" or "noon")
      or clock .. (t.hour < 12 and " a.m." or " p.m."),
  }
end

local function format_date(v, fmt, st)
  local epoch = epoch_of(v)
  if not epoch then return "" end
  local fields = date_fields(os.date("!*t", epoch))
  return (to_text(fmt or "N j, Y", st):gsub("\\?.", function(code)      -- "\Y" is a literal Y
    return #code == 2 and code:sub(2) or fields[code] or code
  end))
end

local function check_date_format(fmt, line)
  for escaped, code in fmt:gmatch("(\\?)(.)") do
    if escaped == "" and UNSUPPORTED_DATE_CODES:find(code, 1, true) then
      fail(line, "date format character '%s' is not supported (use Y y m n d j N M F D l H i s A P)", code)
    end
  end
end

----------------------------------------------------------------------------------------- filters

-- Django's title: Python's str.title() (bytes of UTF-8 letters count as letters), then lower again
-- a letter after a digit ("1st") or after a lowercase letter's apostrophe ("they're").
local function title_case(text)
  return (text:lower():gsub("%f[%a\128-\255]%l", string.upper):gsub("%l'%u", string.lower):gsub("%d%u", string.lower))
end

local function split_commas(text)
  local parts = {}
  for part in (text .. ","):gmatch("([^,]*),") do parts[#parts + 1] = part end
  return parts
end

local function is_list(v, st) return type(v) == "table" and v ~= st.null end

-- run(value, arg, st) → value, how: how "safe" marks the result safe; "arg" says the argument was
-- chosen (safe if a literal string); otherwise it stays safe only if keeps_safe (Django's is_safe).
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
  safe = { run = function(v) return v, "safe" end },
  length = { run = function(v, _, st)
    if type(v) == "string" then return utf8.len(v) or #v end
    local count = is_list(v, st) and #v or 0
    if count == 0 and is_list(v, st) then for _ in pairs(v) do count = count + 1 end end
    return count
  end },
  first = { run = function(v, _, st)
    if type(v) == "string" then return v:match("^" .. utf8.charpattern) end
    return is_list(v, st) and v[1] or nil
  end },
  last = { keeps_safe = true, run = function(v, _, st)
    if type(v) == "string" then return v:match(utf8.charpattern .. "$") end
    return is_list(v, st) and v[#v] or nil
  end },
  join = { arg = "required", run = function(v, separator, st)
    if not is_list(v, st) then return v end
    local items = {}
    for i = 1, #v do items[i] = st.escape and escape_html(to_text(v[i], st)) or to_text(v[i], st) end
    return concat(items, to_text(separator, st)), "safe"
  end },
  striptags = { keeps_safe = true, run = function(v, _, st)
    local text, count = to_text(v, st), 1
    while count > 0 do text, count = text:gsub("<[^>]*>", "") end
    return text
  end },
  truncatechars = { arg = "required", keeps_safe = true, run = function(v, limit, st)  -- "Hello world"|5 → "Hell…"
    local text, chars = to_text(v, st), whole_number(limit)
    if not chars or (utf8.len(text) or #text) <= chars then return text end
    if chars <= 0 then return "" end
    return text:sub(1, (utf8.len(text) and utf8.offset(text, chars) or chars) - 1) .. "…"
  end },
  add = { arg = "required", run = function(v, arg, st)              -- Django: int + int, else v + arg
    local a, b = whole_number(v), whole_number(arg)
    if a and b then return a + b end
    if type(v) == "string" and type(arg) == "string" then return v .. arg end
    if is_list(v, st) and is_list(arg, st) then return move(arg, 1, #arg, #v + 1, move(v, 1, #v, 1, {})) end
    return ""
  end },
  pluralize = { arg = "optional", run = function(v, arg, st)        -- "s", or "y,ies"
    local bits = split_commas(arg and to_text(arg, st) or "s")
    if #bits == 1 then bits = { "", bits[1] } end
    local count = type(v) == "number" and v or type(v) == "string" and tonumber(v) or is_list(v, st) and #v
    if #bits > 2 or not count then return "" end
    return count == 1 and bits[1] or bits[2]
  end },
  yesno = { arg = "optional", run = function(v, arg, st)            -- "yes,no,maybe"; null is maybe
    local bits = split_commas(arg and to_text(arg, st) or "yes,no,maybe")
    if #bits < 2 then return v end
    if is_none(v, st) then return #bits == 3 and bits[3] or bits[2] end
    return truthy(v, st) and bits[1] or bits[2]
  end },
  urlencode = { arg = "optional", run = function(v, safe_chars, st) -- Python's quote(v, safe="/")
    local keep = "%w_.~%-" .. (to_text(safe_chars or "/", st):gsub("%W", "%%%0"))
    return (to_text(v, st):gsub("[^" .. keep .. "]", function(c) return format("%%%02X", c:byte()) end))
  end },
}

------------------------------------------------------------------------------------- expressions

local FORLOOP = {
  counter = function(f) return f.index end, counter0 = function(f) return f.index - 1 end,
  revcounter = function(f) return f.length - f.index + 1 end, revcounter0 = function(f) return f.length - f.index end,
  first = function(f) return f.index == 1 end, last = function(f) return f.index == f.length end,
}

-- A getter for a dotted path, and the path the lint names: a loop variable reads its source
-- ("item.title" in a loop over event.items reads "event.items[].title"). Through a null is null.
local function compile_path(c, segments, line, optional)
  local binding
  for i = #c.scope, 1, -1 do
    if c.scope[i].name == segments[1] then binding = c.scope[i] break end
  end
  if segments[1] == "forloop" and not binding and c.depth > 0 then
    local field, depth = FORLOOP[segments[2] or ""], c.depth
    if not field or segments[3] then fail(line, "'%s' is not a forloop variable", concat(segments, ".")) end
    return function(st) return field(st.frames[depth]) end
  end
  local keys, indexes = move(segments, binding and 2 or 1, #segments, 1, {}), {}
  for i, key in ipairs(keys) do indexes[i] = key:find("^%d+$") and tonumber(key) + 1 or false end
  local n, path = #keys, concat(keys, ".")
  if binding then path = binding.source .. "[]" .. (n > 0 and "." .. path or "") end
  if n > 0 then c.vars[path] = true end
  local function walk(value, st)
    for i = 1, n do
      if value == st.null then return nil end
      if type(value) ~= "table" then st.missing[path] = st.missing[path] or not optional return nil end
      local found = value[keys[i]]
      if found == nil and indexes[i] then found = value[indexes[i]] end
      if found == nil then st.missing[path] = st.missing[path] or not optional return nil end
      value = found
    end
    if value ~= st.null then return value end
  end
  local depth = binding and binding.depth
  if depth then return function(st) return walk(st.frames[depth].item, st) end, path end
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
  if path == "True" or path == "False" or path == "None" then
    return { literal = true, value = ({ True = true, False = false })[path] }, pos + #path
  end
  if path:find("%.%.") or path:find("%.$") then fail(line, "bad variable name '%s'", path) end
  local segments = {}
  for segment in path:gmatch("[^.]+") do segments[#segments + 1] = segment end
  return { segments = segments }, pos + #path
end

-- `value|filter|filter:arg` → evaluate(st) returning value, safe; and the path it reads, if any.
-- `optional`: a missing value is expected there (an {% if %} test), so it is not reported missing;
-- likewise a value whose first filter is default or default_if_none.
local function compile_expression(c, text, line, optional)
  local root, pos = read_atom(text, 1, line)
  if not root then fail(line, "expected a value, found '%s'", text) end
  local filters = {}
  while text:match("^%s*|", pos) do
    local bar = text:match("^%s*|%s*()", pos)
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
  while root.segments and filters[first] and filters[first].name == "lookup"
    and filters[first].arg and filters[first].arg.literal do
    root.segments[#root.segments + 1] = to_text(filters[first].arg.value, NO_NULL)
    first = first + 1
  end
  local get_root, path
  local fallback = filters[first] and (filters[first].name == "default" or filters[first].name == "default_if_none")
  if root.segments then get_root, path = compile_path(c, root.segments, line, optional or fallback) end
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
      local link = chain[i]
      local result, how = link.run(value, link.get_arg and link.get_arg(st) or link.arg, st)
      value, safe = result, how == "safe" or (how == "arg" and link.arg_safe) or (how == nil and link.keeps_safe and safe)
    end
    return value, safe
  end, path
end

-------------------------------------------------------------------------------------- conditions

local function same(a, b, st)
  if is_none(a, st) then return is_none(b, st) end
  return a == b
end

local function ordered(a, b) return type(a) == type(b) and (type(a) == "number" or type(a) == "string") end

local function contains(container, item, st)  -- Python's `item in container`
  if type(container) == "string" then return type(item) == "string" and container:find(item, 1, true) ~= nil end
  if not is_list(container, st) then return false end
  for i = 1, #container do
    if same(container[i], item, st) then return true end
  end
  return item ~= nil and container[item] ~= nil
end

local COMPARE = {
  ["=="] = same, ["!="] = function(a, b, st) return not same(a, b, st) end,
  ["<"] = function(a, b) return ordered(a, b) and a < b end, [">"] = function(a, b) return ordered(a, b) and a > b end,
  ["<="] = function(a, b) return ordered(a, b) and a <= b end, [">="] = function(a, b) return ordered(a, b) and a >= b end,
  ["in"] = function(a, b, st) return contains(b, a, st) end, ["not in"] = function(a, b, st) return not contains(b, a, st) end,
}
local KEYWORDS = { ["and"] = true, ["or"] = true, ["not"] = true, ["in"] = true }
local OPERAND_PARTS = { "^'[^']*'()", '^"[^"]*"()', "^%s*|%s*()", "^[^%s=!<>'\"|]+()" }

-- Operators and operands; an operand keeps its filters, quoted arguments and spaces around '|'.
local function split_condition(text, line)
  local tokens, pos = {}, 1
  while text:find("%S", pos) do
    local start = text:find("%S", pos)
    pos = text:match("^[=!<>]=()", start) or text:match("^[<>]()", start)
    if not pos then                             -- an operand: parts, until none fits
      pos = start
      repeat
        local after
        for _, part in ipairs(OPERAND_PARTS) do after = after or text:match(part, pos) end
        pos = after or pos
      until not after
    end
    if pos == start then fail(line, "unexpected '%s' in {%% if %s %%}", text:sub(pos, pos), text) end
    tokens[#tokens + 1] = text:sub(start, pos - 1)
  end
  return tokens
end

-- Django's precedence: or < and < not < comparisons and `in`.
local function compile_condition(c, text, line)
  local tokens, i = split_condition(text, line), 1
  if #tokens == 0 then fail(line, "{%% if %%} needs a condition") end
  local function operand()
    local token = tokens[i]
    if not token or KEYWORDS[token] or COMPARE[token] then
      fail(line, "expected a value %s in {%% if %s %%}", token and "before '" .. token .. "'" or "at the end", text)
    end
    i = i + 1
    return (compile_expression(c, token, line, true))
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
  local function joined(word, part)           -- a chain of `part word part word part`
    local left = part()
    while tokens[i] == word do
      i = i + 1
      local a, b = left, part()
      if word == "and" then left = function(st) return a(st) and b(st) end
      else left = function(st) return a(st) or b(st) end end
    end
    return left
  end
  local condition = joined("or", function() return joined("and", negation) end)
  if tokens[i] then fail(line, "unexpected '%s' in {%% if %s %%}", tokens[i], text) end
  return condition
end

---------------------------------------------------------------------------------------- template

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
    if not open then return tokens, line > 1 and text:sub(-1) == "\n" and line - 1 or line end
    local close = text:find(CLOSERS[kind], open + 2, true)
    if not close then fail(line, "'{%s' is never closed by '%s'", kind, CLOSERS[kind]) end
    local body = text:sub(open + 2, close - 1)
    tokens[#tokens + 1] = { kind = kind, body = body:match("^%s*(.-)%s*$"), line = line }
    line, pos = line + count_lines(body), close + 2
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

-- Nodes up to a tag in `ends` (returned with its word and the rest of its text), or to the end.
local function compile_nodes(c, ends)
  local nodes = {}
  while c.tokens[c.i] do
    local token = c.tokens[c.i]
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
      if ends and ends[word] then return nodes, word, rest, token.line end
      if TAGS[word] then nodes[#nodes + 1] = TAGS[word](c, token, rest)
      elseif STRAY[word] then fail(token.line, "{%% %s %%} without a matching {%% %s %%}", word, STRAY[word])
      else fail(token.line, "unknown tag {%% %s %%}", word) end
    end                                         -- {# comments #} leave nothing
  end
  return nodes
end

local function compile_block(c, ends, opener)
  local nodes, word, rest, line = compile_nodes(c, ends)
  if not word then
    fail(c.last_line, "{%% %s %%} opened at line %d is never closed", opener.body:match("^%S*"), opener.line)
  end
  return sequence(nodes), word, rest, line
end

TAGS["if"] = function(c, opener, text)
  local conditions, bodies, line = {}, {}, opener.line
  local otherwise, word
  repeat
    conditions[#conditions + 1] = compile_condition(c, text, line)
    bodies[#bodies + 1], word, text, line = compile_block(c, { elif = true, ["else"] = true, endif = true }, opener)
    if word == "else" then otherwise = compile_block(c, { endif = true }, opener) end
  until word ~= "elif"
  return function(st)
    for i = 1, #conditions do
      if conditions[i](st) then return bodies[i](st) end
    end
    if otherwise then otherwise(st) end
  end
end

TAGS["for"] = function(c, opener, text)
  local name, source_text = text:match("^([%a_][%w_]*)%s+in%s+(.-)$")
  if not name then fail(opener.line, "expected {%% for name in list %%}, found {%% for %s %%}", text) end
  local get_list, source = compile_expression(c, source_text, opener.line)
  local depth = c.depth + 1
  c.scope[#c.scope + 1], c.depth = { name = name, source = source or name, depth = depth }, depth
  local body, word = compile_block(c, { empty = true, endfor = true }, opener)
  c.scope[#c.scope], c.depth = nil, depth - 1
  local empty = word == "empty" and compile_block(c, { endfor = true }, opener)
  return function(st)
    local list = get_list(st)
    local count = is_list(list, st) and #list or 0
    if count == 0 and empty then return empty(st) end
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
    if c.tokens[i].kind == "%" and c.tokens[i].body:match("^%S*") == "endcomment" then
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
-- @tparam[opt="template"] string name shown in messages, e.g. "return-confirmation/email.html"
-- @return the template; or nil and "name:line: message" for a syntax error, an unknown tag or filter
function M.compile(text, name)
  local ok, result = pcall(function()
    local tokens, last_line = scan(text)
    local c = { tokens = tokens, i = 1, last_line = last_line, scope = {}, depth = 0, vars = {} }
    local root, variables = sequence(compile_nodes(c)), {}
    for path in pairs(c.vars) do variables[#variables + 1] = path end
    sort(variables)
    return setmetatable({ root = root, variable_list = variables }, Template)
  end)
  if ok then return result end
  if type(result) ~= "table" then error(result, 0) end
  return nil, format("%s:%d: %s", name or "template", result.line, result.message)
end

--- Renders the template.
-- @tparam table context e.g. `{ event = {...}, person = {...}, organization = {...} }`
-- @tparam[opt] table opts `escape` (default true, HTML; false for a subject or a text part) and `null`
--   (the JSON null sentinel: present but null, renders as "" and is not reported missing)
-- @treturn string the text
-- @treturn {string,...} the paths looked up and absent, sorted, e.g. { "event.return_by" }
function Template:render(context, opts)
  opts = opts or {}
  local st = { ctx = context or {}, null = opts.null, escape = opts.escape ~= false,
    buf = {}, n = 0, frames = {}, missing = {} }
  self.root(st)
  local missing = {}
  for path, reported in pairs(st.missing) do
    if reported then missing[#missing + 1] = path end
  end
  sort(missing)
  return concat(st.buf, "", 1, st.n), missing
end

--- Every variable path the template can read, sorted: "event.items" and "event.items[].title" for a
-- loop over event.items showing item.title; "event.Return By" for `event|lookup:'Return By'`.
-- @treturn {string,...}
function Template:variables() return move(self.variable_list, 1, #self.variable_list, 1, {}) end

return M
