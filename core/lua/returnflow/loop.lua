--- Readers for Loop webhook payloads.
-- Loop's payloads drift between its docs and real traffic: ids and amounts come as strings or
-- numbers, `parent_return_reason` may be null, newer payloads add `customer_detail`. These readers
-- absorb that once, so mappings read as sentences: `loop.money(ret.total)`, `loop.email(ret)`.
-- @module returnflow.loop
local json = require "returnflow.json"

local M = {}

local null, array, object = json.null, json.array, json.object
local tonumber, type, ipairs = tonumber, type, ipairs
local floor = math.floor
local format, match, find, sub = string.format, string.match, string.find, string.sub

local DAY = 86400

-- The host's reading of M.properties, M.profile and M.email for a read-only event of the common
-- shape, in place from its tape (core/script/loop_properties.c): the same answer (return_by aside,
-- added below), or nothing, and then the Lua code below does the work. Absent outside the host (the
-- tools), where require fails.
local native_ok, native_loop = pcall(require, "returnflow.loop_native")
if not native_ok or type(native_loop) ~= "table" then native_loop = {} end
local fast_properties, fast_profile, fast_email = native_loop.properties, native_loop.profile, native_loop.email

--- True when v is absent: nil or JSON null.
function M.missing(v) return v == nil or v == null end

local missing = M.missing

--- The value, or `default` when it is nil or JSON null.
function M.value(v, default)
  if missing(v) then return default end
  return v
end

--- A money amount as a number: "118.80" → 118.8, "14080" → 14080 (JPY has no minor unit).
-- Returns nil for nil, null, "" or text that is not a number.
function M.money(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" or v == "" then return nil end
  return tonumber(v)
end

--- An id as a string, whichever way Loop sent it (13377290551445 or "13377290551445").
function M.id(v)
  if type(v) == "string" then return v end
  if math.type(v) == "integer" then return format("%d", v) end
  if type(v) == "number" then return format("%.0f", v) end
  return nil
end

--- The return id of any Loop event (return and label events use `id`; others `return_id`).
function M.return_id(ev)
  local topic = ev.topic
  if topic == "return" or topic == "label" then return M.id(ev.id) end
  return M.id(ev.return_id) or M.id(ev.id)
end

--- The customer's email: `customer_detail.email`, else `customer`, else `email`.
function M.email(ev)
  if fast_email then
    local known, email = fast_email(ev)
    if known then return email end
  end
  local detail = ev.customer_detail
  local email = not missing(detail) and detail.email or nil
  if missing(email) or email == "" then email = ev.customer end
  if missing(email) or email == "" then email = ev.email end
  if missing(email) or email == "" then return nil end
  return email
end

--- The Klaviyo location of a Loop address, or nil.
function M.location(address)
  if missing(address) then return nil end
  local loc = {
    address1 = M.value(address.address1), address2 = M.value(address.address2),
    city = M.value(address.city), region = M.value(address.state),
    zip = M.value(address.zip), country = M.value(address.country),
  }
  for k, v in pairs(loc) do
    if v == "" then loc[k] = nil end
  end
  if next(loc) == nil then return nil end
  return loc
end

--- The Klaviyo profile Loop's payload identifies: email, names, location.
-- Phone numbers are left out on purpose: Loop's are free text ("+1 206 555 0142") and Klaviyo
-- rejects a profile whose phone_number is not E.164.
function M.profile(ev)
  local p = fast_profile and fast_profile(ev)
  if p then return p end
  local detail = ev.customer_detail
  local first, last
  if not missing(detail) then first, last = M.value(detail.first_name), M.value(detail.last_name) end
  first = first or M.value(ev.first_name)
  last = last or M.value(ev.last_name)
  return {
    email = M.email(ev),
    first_name = first ~= "" and first or nil,
    last_name = last ~= "" and last or nil,
    location = M.location(ev.address),
  }
end

--- The moment the event describes, as Loop wrote it (ISO 8601), or nil.
function M.time(ev)
  local t
  if ev.topic == "label" then t = ev.label_updated_at
  elseif ev.trigger == "return.created" then t = ev.created_at
  else t = ev.edited_at end
  if missing(t) then t = ev.created_at end
  if missing(t) then return nil end
  return t
end

-- Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return m <= 2 and y + 1 or y, m, d
end

local parse_epoch, format_iso

-- Parsed times, by text: one event asks for the same few times several times over.
local epoch_cache, epoch_cached = {}, 0

--- Seconds since the epoch of an ISO 8601 time ("2026-10-02T14:21:07+00:00", "...Z",
-- "2026-10-02 14:21:07", "2026-10-02"), or nil when it is not one.
function M.epoch(iso)
  if type(iso) ~= "string" then return nil end
  local t = epoch_cache[iso]
  if t ~= nil then return t or nil end
  t = parse_epoch(iso)
  if epoch_cached >= 4096 then epoch_cache, epoch_cached = {}, 0 end
  epoch_cache[iso], epoch_cached = t or false, epoch_cached + 1
  return t
end

function parse_epoch(iso)
  local y, mo, d, rest = match(iso, "^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local h, mi, s, zone = 0, 0, 0, ""
  if rest ~= "" then
    h, mi, s, zone = match(rest, "^[T ](%d%d):(%d%d):(%d%d)%.?%d*(.*)$")
    if not h then return nil end
  end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  local offset = 0
  if zone ~= "" and zone ~= "Z" then
    local sign, oh, om = match(zone, "^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60
    if sign == "-" then offset = -offset end
  end
  return days_from_civil(y, mo, d) * DAY + h * 3600 + mi * 60 + s - offset
end

-- Formatted times, by whole second: an event's schedules and return_by ask for the same few.
local iso_cache, iso_cached = {}, 0

--- An epoch as ISO 8601 UTC ("2026-10-30T14:21:07+00:00").
function M.iso(epoch)
  epoch = floor(epoch)
  local s = iso_cache[epoch]
  if s then return s end
  s = format_iso(epoch)
  if iso_cached >= 4096 then iso_cache, iso_cached = {}, 0 end
  iso_cache[epoch], iso_cached = s, iso_cached + 1
  return s
end

function format_iso(epoch)
  local days, secs = epoch // DAY, epoch % DAY
  local y, m, d = civil_from_days(days)
  return format("%04d-%02d-%02dT%02d:%02d:%02d+00:00", y, m, d, secs // 3600, secs % 3600 // 60, secs % 60)
end

--- The date a return expires: 28 days after it was created ("2026-10-30"), Loop's default window.
function M.return_by(created_at, days)
  local t = M.epoch(created_at)
  if not t then return nil end
  return M.iso(t + (days or 28) * DAY):sub(1, 10)
end

--- The line items of a return (an empty list when there are none).
function M.items(ret)
  local items = ret.line_items
  if missing(items) then return array() end
  return items
end

-- The variant part of a Shopify title: "Organic Cotton Tee - Black / M" → "Black / M".
local function variant_title(item)
  local v = item.variant_title
  if not missing(v) then return v end
  local title = item.title
  if type(title) ~= "string" then return "" end
  local last, at = nil, 1
  repeat                                      -- the last " - " separates product and variant
    local i = find(title, " - ", at, true)
    if i then last, at = i, i + 1 end
  until not i
  return last and sub(title, last + 3) or ""
end

local function text(v)
  if missing(v) then return "" end
  return v
end

-- The list properties product_lists fills, by prefix (names built once, not per event).
local LIST_KEYS = {}
for _, prefix in ipairs({ "product_", "returned_product_" }) do
  LIST_KEYS[prefix] = { prefix .. "names", prefix .. "images", prefix .. "skus", prefix .. "variant_titles",
                        prefix .. "types" }
end

-- Appends to the lists in `into` one entry per item: names, images, skus, variant titles, types.
local function product_lists(into, prefix, items)
  local keys = LIST_KEYS[prefix]
  local names, images, skus, variants, types =
    into[keys[1]], into[keys[2]], into[keys[3]], into[keys[4]], into[keys[5]]
  for _, item in ipairs(items) do
    local n = #names + 1
    names[n] = text(item.title)
    images[n] = text(item.image or item.product_image)
    skus[n] = text(item.sku)
    variants[n] = variant_title(item)
    if types then types[n] = text(item.product_type) end
  end
end

--- Every line item's return reason, in order.
function M.reasons(ret)
  local out = array()
  for i, item in ipairs(M.items(ret)) do out[i] = item.return_reason end
  return out
end

--- Every line item's parent reason ("Item didn't fit"), null where Loop has none.
function M.reason_parents(ret)
  local out = array()
  for i, item in ipairs(M.items(ret)) do out[i] = item.parent_return_reason end
  return out
end

--- The outcome of every line item ("exchange", "refund", "credit", ...).
function M.outcomes(ret)
  local out = array()
  for i, item in ipairs(M.items(ret)) do out[i] = item.outcome end
  return out
end

-- Where grouped_items reads: each list, and the field that names a product in it.
local GROUPED_FROM = {
  line_items = { list = M.items, key = "line_item_id" },
  exchanges = { list = function(ret) return M.value(ret.exchanges, {}) end, key = "variant_id" },
}

--- Loop's line items as one `{ name, image, quantity }` entry per product, in first-seen order:
-- Loop sends one line per unit, so lines with the same `line_item_id` (else the same title) add to
-- `quantity`. `name` is the title, `image` the image else the product image ("" where Loop has none).
-- `keep(line)`, optional, picks the lines that count: `function(line) return line.outcome == "refund" end`.
-- `from = "exchanges"` reads the exchange items instead, one entry per `variant_id` (else title).
-- Returns a JSON array (an empty one encodes as `[]`).
function M.grouped_items(ret, keep, from)
  local source = GROUPED_FROM[from or "line_items"]
  if not source then error("grouped_items: from is \"line_items\" or \"exchanges\", not " .. tostring(from), 2) end
  local key_field = source.key
  local items, seen = array(), {}
  for _, line in ipairs(source.list(ret)) do
    if not keep or keep(line) then
      local key = M.id(line[key_field]) or M.value(line.title, "")
      local item = seen[key]
      if item then
        item.quantity = item.quantity + 1
      else
        item = {
          name = M.value(line.title, ""),
          image = M.value(line.image) or M.value(line.product_image, ""),
          quantity = 1,
        }
        seen[key] = item
        items[#items + 1] = item
      end
    end
  end
  return items
end

-- ISO 4217 currencies with no minor unit.
local WHOLE_CURRENCIES = {
  BIF = true, CLP = true, DJF = true, GNF = true, ISK = true, JPY = true, KMF = true, KRW = true, PYG = true,
  RWF = true, UGX = true, UYI = true, VND = true, VUV = true, XAF = true, XOF = true, XPF = true,
}

--- How many decimals an amount in currency `code` is shown with: 0 for the ISO 4217 currencies with
-- no minor unit (JPY, KRW, CLP, ...), else 2.
function M.currency_decimals(code)
  if WHOLE_CURRENCIES[code] then return 0 end
  return 2
end

--- True when the return ships with a label (Loop's `labels_enabled`, else inferred from the label status).
function M.labels_enabled(ret)
  if not missing(ret.labels_enabled) then return ret.labels_enabled == true end
  local status, labels = ret.label_status, ret.labels
  if missing(status) then return not missing(labels) and #labels > 0 end
  return status ~= "N/A"
end

--- True when the customer keeps the item (Loop's `keep_item`, false when absent).
function M.keep_item(ret)
  return ret.keep_item == true
end

local function destination(ret)
  local d = ret.destination or ret.return_destination
  if missing(d) then return nil end
  return {
    name = M.value(d.name), street_address = M.value(d.street_address or d.address1),
    city = M.value(d.city), state = M.value(d.state), zip = M.value(d.zip),
    country = M.value(d.country), country_code = M.value(d.country_code),
  }
end

-- A native property's value: JSON null where Loop has none, so every native property is present.
local function native(v)
  if missing(v) then return null end
  return v
end

--- The properties Loop's own Klaviyo integration puts on every return event, same names and meaning,
-- plus `provider_order_id` (the Shopify order id) and `carrier`, which Loop's payload has too.
-- Every one is present, null where Loop's payload has no value.
-- `product_*` lists every product the return touches (returned items, then exchange items);
-- `returned_product_*` only the returned line items. Lists stay index-aligned ("" where Loop has no value).
function M.properties(ret)
  if fast_properties then
    local p = fast_properties(ret)
    if p then
      p.return_by = native(M.return_by(ret.created_at))
      return p
    end
  end
  local labels = ret.labels
  local last_label = not missing(labels) and #labels > 0 and labels[#labels] or nil
  local p = {
    event_id = ret.trigger,
    return_id = native(M.return_id(ret)),
    return_status = native(ret.state),
    order = native(ret.order_name),
    provider_order_id = native(M.id(ret.provider_order_id)),
    status_page_url = native(ret.status_page_url),
    return_reasons = M.reasons(ret),
    return_reason_parents = M.reason_parents(ret),
    return_outcome = M.outcomes(ret),
    return_destination = native(destination(ret)),
    labels_enabled = M.labels_enabled(ret),
    keep_item = M.keep_item(ret),
    label = native(last_label and last_label.url),
    carrier = native(ret.carrier or (last_label and last_label.carrier)),
    tracking_number = native(ret.tracking_number),
    tracking_url = native(ret.tracking_url or (last_label and last_label.tracking_url)),
    tracking_status = native(ret.label_status),
    return_by = native(M.return_by(ret.created_at)),
    product_names = array(), product_images = array(), product_skus = array(),
    product_variant_titles = array(),
    returned_product_names = array(), returned_product_images = array(),
    returned_product_skus = array(), returned_product_variant_titles = array(),
    returned_product_types = array(),
  }
  local items = M.items(ret)
  product_lists(p, "product_", items)
  product_lists(p, "returned_product_", items)
  local exchanges = ret.exchanges
  if not missing(exchanges) then product_lists(p, "product_", exchanges) end
  return p
end

--- The properties of a label event (label.created / label.updated): what the label says, each
-- present, null where Loop's label has no value. Given the return's properties (`loop.properties` of
-- its return event, as remembered), they are the base and the label's own values replace theirs, so a
-- label event carries everything a return event does.
function M.label_properties(ev, return_properties)
  local p = {}
  if type(return_properties) == "table" then
    for k, x in pairs(return_properties) do p[k] = x end
  end
  p.event_id = ev.trigger
  p.return_id = native(M.return_id(ev))
  p.label = native(ev.label_url)
  p.carrier = native(ev.carrier)
  p.tracking_number = native(ev.tracking_number)
  p.tracking_url = native(ev.tracking_url)
  p.tracking_status = native(ev.label_status)
  p.shipment_id = native(ev.shipment_id)
  p.provider_order_id = native(M.id(ev.provider_order_id) or M.value(p.provider_order_id))
  return p
end

M.null, M.array, M.object = null, array, object

return M
