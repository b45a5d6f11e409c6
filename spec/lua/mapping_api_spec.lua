-- The script API (core/lua/returnflow/emitter.lua) seen from outside: small mappings written into a
-- temporary scripts folder, run by `returnflow map` over a fixture, and the Klaviyo requests they make.
local h = require "helpers"

local RETURN = h.fixture_path("return.created.json")
local GIFTCARD = h.fixture_path("giftcard.requested.json")

-- Maps `files` with a scripts folder holding one file, 10-test.lua, with `source`.
local function map_with(source, files, args)
  local scripts = h.scripts_dir({ ["10-test.lua"] = source })
  return h.map(files or RETURN, { scripts = scripts, args = args })
end

-- A value Klaviyo takes as "a value or values", as a list.
local function as_list(v)
  if type(v) == "table" then return v end
  return { v }
end

local function profile_of(request) return request.body.data.attributes.profile.data.attributes end

describe("mapping API", function()
  teardown(h.cleanup)

  describe("segment and unsegment", function()
    local SOURCE = [[
return {
  ["return.created"] = function(ret, out)
    out:segment("returner")
    out:segment("vip")
    out:unsegment("first-timer")
    out:track("First", { n = 1 })
    out:track("Second", { n = 2 })
  end,
}
]]

    it("patch returnflow_segments inside the profile attributes of the first event request", function()
      local docs, run = map_with(SOURCE)

      assert.equal(0, run.code, run.stderr)
      local first, second = docs[1].requests[1], docs[1].requests[2]
      assert.equal("/api/events", first.path)
      local patch = profile_of(first).meta.patch_properties
      assert.same({ "returner", "vip" }, as_list(patch.append.returnflow_segments))
      assert.same({ "first-timer" }, as_list(patch.unappend.returnflow_segments))
      assert.is_nil(first.body.data.attributes.meta)
      assert.is_nil(first.body.data.meta)
      assert.is_nil(profile_of(second).meta)
    end)

    it("use the property --segments-property names", function()
      local docs = map_with(SOURCE, RETURN, { "--segments-property", "loop_tags" })

      local patch = profile_of(docs[1].requests[1]).meta.patch_properties
      assert.same({ "returner", "vip" }, as_list(patch.append.loop_tags))
      assert.is_nil(patch.append.returnflow_segments)
    end)
  end)

  describe("a profile-only mapping", function()
    local SOURCE = [[
return {
  ["return.created"] = function(ret, out)
    out:profile{ first_name = "Mary", properties = { loyalty = "gold" } }
    out:segment("returner")
  end,
}
]]

    it("upserts the profile with meta beside the attributes", function()
      local docs = map_with(SOURCE)

      assert.equal("mapped", docs[1].status)
      assert.equal(1, #docs[1].requests)
      local r = docs[1].requests[1]
      assert.equal("POST", r.method)
      assert.equal("/api/profile-import", r.path)
      local data = r.body.data
      assert.equal("profile", data.type)
      assert.equal("maria.gonzalez@example.com", data.attributes.email)
      assert.equal("Mary", data.attributes.first_name)
      assert.equal("gold", data.attributes.properties.loyalty)
      assert.same({ "returner" }, as_list(data.meta.patch_properties.append.returnflow_segments))
      assert.is_nil(data.attributes.meta)
    end)

    it("upserts the profile for a segment alone", function()
      local docs = map_with([[
return { ["return.created"] = function(ret, out) out:segment("returner") end }
]])

      assert.equal(1, #docs[1].requests)
      assert.equal("/api/profile-import", docs[1].requests[1].path)
      local meta = docs[1].requests[1].body.data.meta
      assert.same({ "returner" }, as_list(meta.patch_properties.append.returnflow_segments))
    end)
  end)

  describe("identify", function()
    it("replaces the email read from the payload", function()
      local docs = map_with([[
return {
  ["return.created"] = function(ret, out)
    out:identify{ email = "returns+" .. ret.id .. "@example.com" }
    out:track("Identified", {})
  end,
}
]])

      assert.equal("returns+8812745@example.com", profile_of(docs[1].requests[1]).email)
    end)

    it("may identify by external id alone", function()
      local docs = map_with([[
return {
  ["return.created"] = function(ret, out)
    out:identify{ external_id = "shopify:" .. ret.provider_order_id }
    out:track("Identified", {})
  end,
}
]])

      local profile = profile_of(docs[1].requests[1])
      assert.equal("shopify:5839210048821", profile.external_id)
      assert.is_nil(profile.email)
    end)
  end)

  describe("subscribe", function()
    local SOURCE = [[
return { ["return.created"] = function(ret, out) out:subscribe("Y6nRLr") end }
]]

    it("creates a subscription job on the list with a private key", function()
      local docs = map_with(SOURCE)

      local r = docs[1].requests[1]
      assert.equal("/api/profile-subscription-bulk-create-jobs", r.path)
      local data = r.body.data
      assert.equal("profile-subscription-bulk-create-job", data.type)
      assert.equal("Y6nRLr", data.relationships.list.data.id)
      local profile = data.attributes.profiles.data[1].attributes
      assert.equal("maria.gonzalez@example.com", profile.email)
      assert.equal("SUBSCRIBED", profile.subscriptions.email.marketing.consent)
    end)

    it("uses /client/subscriptions with a public key", function()
      local docs = map_with(SOURCE, RETURN, { "--key-kind", "public", "--site-id", "AbC123" })

      local r = docs[1].requests[1]
      assert.equal("/client/subscriptions?company_id=AbC123", r.path)
      assert.is_nil(r.headers.Authorization)
      assert.equal("Y6nRLr", r.body.data.relationships.list.data.id)
    end)
  end)

  describe("schedule and cancel", function()
    it("appear in scheduled and cancelled, not in requests", function()
      local docs, run = map_with([[
return {
  ["return.created"] = function(ret, out)
    out:schedule("nudge:" .. ret.id, 3600, "Return Nudge", { step = 1 })
    out:cancel("old-nudge:" .. ret.id)
  end,
}
]])

      assert.equal(0, run.code, run.stderr)
      local doc = docs[1]
      assert.equal("mapped", doc.status)
      assert.same({}, doc.requests)
      assert.equal(1, #doc.scheduled)
      local s = doc.scheduled[1]
      assert.equal("nudge:8812745", s.key)
      assert.equal("2026-10-02T15:21:07+00:00", s.at)       -- an hour after the return was created
      assert.equal("/api/events", s.request.path)
      local event = s.request.body.data.attributes
      assert.equal("Return Nudge", event.metric.data.attributes.name)
      assert.equal(s.at, event.time)
      assert.equal(1, event.properties.step)
      assert.same({ "old-nudge:8812745" }, doc.cancelled)
    end)
  end)

  describe("drop and fail", function()
    it("drop ends the event as dropped, with the reason", function()
      local docs, run = map_with([[
return { ["return.created"] = function(ret, out) out:track("Never", {}); out:drop("not for this store") end }
]])

      assert.equal(0, run.code)
      assert.equal("dropped", docs[1].status)
      assert.equal("not for this store", docs[1].reason)
      assert.same({}, docs[1].requests)
    end)

    it("fail ends the event as failed, with the message", function()
      local docs, run = map_with([[
return {
  ["return.created"] = function(ret, out)
    out:track("Never", {})
    out:fail("order " .. ret.order_name .. " is on hold")
  end,
}
]])

      assert.equal(1, run.code)
      assert.equal("failed", docs[1].status)
      assert.equal("order #10482 is on hold", docs[1].reason)
      assert.same({}, docs[1].requests)
    end)
  end)

  describe("track options", function()
    it("refuse a unique_id that is not a non-empty string, at the script's line", function()
      for _, bad in ipairs({ "12", '""', "{ 'x' }" }) do
        local docs, run = map_with(([[
return {
  ["return.created"] = function(ret, out)
    out:track("X", { a = 1 }, { unique_id = %s })
  end,
}
]]):format(bad))
        assert.equal(1, run.code, bad)
        assert.equal("failed", docs[1].status, bad)
        assert.truthy(docs[1].reason:find("10-test.lua:3: track: unique_id must be a non-empty string", 1, true),
                      docs[1].reason)
      end
    end)
  end)

  describe("several files", function()
    local function file(tag)
      return string.format([[
return {
  ["*"] = function(ev, out) out:track("%s *", {}) end,
  ["return.created"] = function(ev, out) out:track("%s return.created", {}) end,
}
]], tag, tag)
    end

    it("run in file-name order, and '*' handlers see every trigger", function()
      local scripts = h.scripts_dir({ ["20-b.lua"] = file("b"), ["10-a.lua"] = file("a") })

      local docs = h.map({ RETURN, GIFTCARD }, { scripts = scripts })

      assert.same({ "a *", "a return.created", "b *", "b return.created" }, h.metrics(docs[1]))
      assert.same({ "a *", "b *" }, h.metrics(docs[2]))
    end)
  end)

  describe("JSON encoding", function()
    it("encodes an empty properties table as {} and returnflow.array() as []", function()
      local docs = map_with([[
local rf = require "returnflow"
return {
  ["return.created"] = function(ret, out)
    out:track("Empty", {})
    out:track("Lists", { none = rf.array(), also_none = rf.array({}), empty_object = rf.object() })
  end,
}
]])

      local empty = docs[1].requests[1].body.data.attributes.properties
      local lists = docs[1].requests[2].body.data.attributes.properties
      assert.equal("object", h.json_kind(empty))
      assert.equal("array", h.json_kind(lists.none))
      assert.equal("array", h.json_kind(lists.also_none))
      assert.equal("object", h.json_kind(lists.empty_object))
      assert.truthy(docs[1].raw:find('"properties":{},', 1, true), docs[1].raw)
      assert.truthy(docs[1].raw:find('"none":[]', 1, true), docs[1].raw)
    end)
  end)

  describe("loop.grouped_items", function()
    -- Tracks "Items" with what `call` (a Lua expression over ret) returns, and gives back that list.
    local function items_of(call, file)
      local docs, run = map_with([[
local loop = require "returnflow.loop"
return {
  ["return.created"] = function(ret, out) out:track("Items", { items = ]] .. call .. [[ }) end,
}
]], file)
      assert.equal(0, run.code, run.stderr)
      return docs[1].requests[1].body.data.attributes.properties.items, docs[1].raw
    end

    it("gives one entry per line_item_id, in first-seen order, counting Loop's one line per unit", function()
      local items = items_of("loop.grouped_items(ret)")

      assert.same({
        { name = "Organic Cotton Tee - Black / M", image = "", quantity = 2 },
        { name = "Denim Trucker Jacket - Indigo / S", image = "", quantity = 1 },
      }, items)
    end)

    it("keeps only the lines keep(line) accepts", function()
      local items = items_of('loop.grouped_items(ret, function(line) return line.outcome == "refund" end)')

      assert.same({ { name = "Denim Trucker Jacket - Indigo / S", image = "", quantity = 1 } }, items)
    end)

    it("groups by title where Loop has no line_item_id, and takes the image, else the product image", function()
      local ret = h.fixture("return.created.json")
      ret.line_items[1].line_item_id, ret.line_items[2].line_item_id = h.null, h.null
      ret.line_items[1].product_image = "https://cdn.example.com/tee.png"
      ret.line_items[3].image = "https://cdn.example.com/jacket.png"
      ret.line_items[3].product_image = "https://cdn.example.com/jacket-product.png"

      local items = items_of("loop.grouped_items(ret)", h.event_file(ret))

      assert.same({
        { name = "Organic Cotton Tee - Black / M", image = "https://cdn.example.com/tee.png", quantity = 2 },
        { name = "Denim Trucker Jacket - Indigo / S", image = "https://cdn.example.com/jacket.png", quantity = 1 },
      }, items)
    end)

    it("encodes no lines as []", function()
      local ret = h.fixture("return.created.json")
      ret.line_items = h.null

      local items, raw = items_of("loop.grouped_items(ret)", h.event_file(ret))

      assert.equal("array", h.json_kind(items))
      assert.truthy(raw:find('"items":[]', 1, true), raw)
    end)

    it("reads the exchange items, one entry per variant_id, with from = \"exchanges\"", function()
      local items = items_of('loop.grouped_items(ret, nil, "exchanges")')

      assert.same({ { name = "Organic Cotton Tee - Black / L", image = "", quantity = 2 } }, items)
    end)

    it("fails the event for a list it does not know", function()
      local docs, run = map_with([[
local loop = require "returnflow.loop"
return { ["return.created"] = function(ret, out) loop.grouped_items(ret, nil, "refunds") end }
]])

      assert.equal(1, run.code)
      assert.equal("failed", docs[1].status)
      assert.truthy(docs[1].reason:find('from is "line_items" or "exchanges", not refunds', 1, true), docs[1].reason)
    end)
  end)

  describe("loop.currency_decimals", function()
    it("is 0 for ISO 4217 currencies with no minor unit, else 2", function()
      local docs, run = map_with([[
local loop = require "returnflow.loop"
return {
  ["return.created"] = function(ret, out)
    out:track("Decimals", {
      JPY = loop.currency_decimals("JPY"), KRW = loop.currency_decimals("KRW"),
      CLP = loop.currency_decimals("CLP"), USD = loop.currency_decimals("USD"),
      EUR = loop.currency_decimals("EUR"), none = loop.currency_decimals(nil),
    })
  end,
}
]])

      assert.equal(0, run.code, run.stderr)
      local decimals = docs[1].requests[1].body.data.attributes.properties
      assert.same({ JPY = 0, KRW = 0, CLP = 0, USD = 2, EUR = 2, none = 2 }, decimals)
    end)
  end)

  describe("changes: a file changes what earlier files emitted", function()
    -- The defaults as a merchant's folder has them, then the merchant's own file.
    local DEFAULTS = 'return require "returnflow.defaults"\n'
    local function map_changed(source, files, args)
      local scripts = h.scripts_dir({ ["10-defaults.lua"] = DEFAULTS, ["50-mine.lua"] = source })
      return h.map(files or RETURN, { scripts = scripts, args = args })
    end
    local function event(doc, metric)
      for _, r in ipairs(doc.requests) do
        local a = r.body.data.attributes
        if a.metric and a.metric.data.attributes.name == metric then return a end
      end
      for _, sch in ipairs(doc.scheduled) do
        local a = sch.request.body.data.attributes
        if a.metric.data.attributes.name == metric then return a end
      end
    end

    it("renames a default metric and adds a property in the docs' five lines", function()
      local five_lines = [[
return { changes = {
  ["Loop Return Created"] = { metric = "Return Started",
    properties = { shopify_order_id = function(ret) return ret.provider_order_id end } },
} }
]]
      local docs, run = map_changed(five_lines)

      assert.equal(0, run.code, run.stderr)
      assert.is_nil(event(docs[1], "Loop Return Created"))
      local started = event(docs[1], "Return Started")
      assert.equal("5839210048821", started.properties.shopify_order_id)
      assert.equal("#10482", started.properties.order)               -- the default's properties stay
      assert.equal(118.8, started.value)
      -- the scheduled reminders share the default's properties table: they are left as they were
      assert.is_nil(event(docs[1], "Loop Return Expiring").properties.shopify_order_id)
    end)

    it("removes properties, drops an event by metric (false) or by trigger, sets unique_id and the profile",
       function()
      local source = [[
return { changes = {
  ["Loop Return Created"] = { remove = { "product_images", "label" }, unique_id = "mine:created",
                              profile = { properties = { returner = true } } },
  ["Loop Return Expired"] = false,
  ["Loop Return Status Updated"] = { trigger = "return.updated", drop = true },
} }
]]
      local docs, run = map_changed(source, { RETURN, h.fixture_path("return.updated.cancelled.json") })

      assert.equal(0, run.code, run.stderr)
      local created = event(docs[1], "Loop Return Created")
      assert.is_nil(created.properties.product_images)
      assert.is_nil(created.properties.label)
      assert.equal("mine:created", created.unique_id)
      assert.same({ returner = true }, created.profile.data.attributes.properties)
      assert.is_nil(event(docs[1], "Loop Return Expired"))
      assert.is_table(event(docs[1], "Loop Return Expiring"))
      assert.is_nil(event(docs[2], "Loop Return Status Updated"))
      assert.is_table(event(docs[2], "Loop Return Cancelled"))
    end)

    it("runs `after` on every event, after every handler, and a later file sees an earlier file's change",
       function()
      local scripts = h.scripts_dir({
        ["10-defaults.lua"] = DEFAULTS,
        ["50-rename.lua"] = 'return { changes = { ["Loop Return Created"] = { metric = "Return Started" } } }\n',
        ["60-tag.lua"] = [[
return {
  after = function(ret, action, out)
    action.properties.shop = "acme"
    action.properties.seen_as = action.metric
    if action.scheduled then return false end      -- no reminders for this shop
    out:profile { properties = { last_metric = action.metric } }
  end,
}
]],
      })
      local docs, run = h.map(RETURN, { scripts = scripts })

      assert.equal(0, run.code, run.stderr)
      assert.same({}, docs[1].scheduled)
      local started = event(docs[1], "Return Started")
      assert.equal("acme", started.properties.shop)
      assert.equal("Return Started", started.properties.seen_as)
    end)

    it("reports a wrong rule when the folder loads, at the line that names its metric", function()
      local source = '-- mine\nreturn { changes = {\n  ["Loop Return Created"] = { metric = "" },\n'
                     .. '  ["Loop Refund Issued"] = { tigger = "return.closed" },\n} }\n'
      local dir = h.scripts_dir({ ["10-defaults.lua"] = DEFAULTS, ["50-mine.lua"] = source })

      local stdout, stderr, code = h.run({ "check", dir })

      assert.equal(1, code, stdout .. stderr)
      local out = stdout .. stderr
      assert.truthy(out:find(dir .. '/50-mine.lua:3: changes["Loop Return Created"]: metric must be', 1, true), out)
      assert.truthy(out:find(dir .. "/50-mine.lua:4: changes[\"Loop Refund Issued\"]: unknown key 'tigger'", 1, true),
                    out)
    end)

    it("reports a later file's rule on a metric an earlier file renamed or dropped: it would never match",
       function()
      local mine = 'return { changes = {\n  ["Loop Return Created"] = { metric = "Return Started" },\n'
                   .. '  ["Loop Return Cancelled"] = false,\n  ["Loop Label Updated"] = { trigger = "label.updated",'
                   .. ' metric = "Parcel Moved" },\n} }\n'
      local template = h.read(h.root .. "/templates/first-time-returner/72-first-time-returner.lua")
      local later = '-- Loop Return Cancelled\nreturn { changes = {\n  ["Loop Return Cancelled"] = { properties = '
                    .. '{ x = 1 } },\n  ["Return Started"] = { properties = { y = 1 } },\n'
                    .. '  ["Loop Label Updated"] = { properties = { z = 1 } },\n} }\n'
      local dir = h.scripts_dir({ ["10-defaults.lua"] = DEFAULTS, ["50-mine.lua"] = mine,
                                  ["72-first-time-returner.lua"] = template, ["80-later.lua"] = later })

      local stdout, stderr, code = h.run({ "check", dir })

      assert.equal(1, code, stdout .. stderr)
      local out = stdout .. stderr
      local line = 0      -- the template's rule is reported at its key, not at the comment naming the metric
      local n = 0
      for text in template:gmatch("([^\n]*)\n") do
        n = n + 1
        if line == 0 and text:find('["Loop Return Created"]', 1, true) then line = n end
      end
      assert.is_true(line > 1)
      assert.truthy(out:find(('%s/72-first-time-returner.lua:%d: changes["Loop Return Created"]: no earlier file emits '
                              .. '"Loop Return Created": %s/50-mine.lua:2 renames it to "Return Started", so this rule '
                              .. 'would never match; key this rule on "Return Started"'):format(dir, line, dir), 1, true),
                    out)
      assert.truthy(out:find(('%s/80-later.lua:3: changes["Loop Return Cancelled"]: no earlier file emits "Loop Return '
                              .. 'Cancelled": %s/50-mine.lua:3 drops it'):format(dir, dir), 1, true), out)
      -- a rename for some triggers only leaves the name to the others; a renamed-to name is there
      assert.is_nil(out:find('changes["Loop Label Updated"]', 1, true), out)
      assert.is_nil(out:find('changes["Return Started"]', 1, true), out)
      assert.truthy(out:find("2 problems", 1, true), out)
    end)

    it("fails the event at the merchant's line when a change makes it wrong, and sends none of it", function()
      local source = 'return {\n  after = function(ev, action)\n    action.time = "yesterday"\n  end,\n}\n'

      local docs = map_changed(source)

      assert.equal("failed", docs[1].status)
      assert.matches("50%-mine%.lua:2: after: time 'yesterday' is not an ISO 8601 date%-time", docs[1].reason)
      assert.same({}, docs[1].requests)
    end)

    it("refuses a new action from a change: it would escape the files before", function()
      local source = 'return {\n  after = function(ev, action, out)\n    out:track("More", {})\n  end,\n}\n'

      local docs = map_changed(source)

      assert.equal("failed", docs[1].status)
      assert.matches("50%-mine%.lua:3: track: not from changes or after", docs[1].reason)
    end)
  end)

  describe("returnflow check", function()
    local function check(files)
      local dir = h.scripts_dir(files)
      local stdout, stderr, code = h.run({ "check", dir })
      return dir, stdout .. stderr, code
    end

    it("passes a folder of good scripts", function()
      local good = 'return { ["return.created"] = function(ret, out) end }\n'

      local _, out, code = check({ ["10-ok.lua"] = good })

      assert.equal(0, code, out)
      assert.truthy(out:find("1 file, 1 handler, no problems", 1, true), out)
    end)

    it("reports a file that returns a non-table as file:line: message", function()
      local number = "local answer = 42\nreturn answer\n"

      local dir, out, code = check({ ["10-num.lua"] = number })

      assert.equal(1, code)
      assert.truthy(out:find(h.literal(dir) .. "/10%-num%.lua:%d+: the file must return a table of handlers"), out)
      assert.truthy(out:find("it returned number", 1, true), out)
    end)

    it("reports a handler that is not a function as file:line: message", function()
      local not_a_function = 'return {\n  ["return.created"] = "Loop Return Created",\n}\n'

      local dir, out, code = check({ ["10-str.lua"] = not_a_function })

      assert.equal(1, code)
      local pattern = h.literal(dir) .. "/10%-str%.lua:%d+: handler for 'return%.created' is a string, not a function"
      assert.truthy(out:find(pattern), out)
    end)

    it("reports an unknown trigger key as file:line: message", function()
      local typo = 'return {\n  ["return.craeted"] = function(ret, out) end,\n}\n'

      local dir, out, code = check({ ["10-typo.lua"] = typo })

      assert.equal(1, code)
      assert.truthy(out:find(dir .. "/10-typo.lua:2: unknown trigger 'return.craeted'", 1, true), out)
    end)
  end)

  describe("Klaviyo's OpenAPI spec", function()
    local EVERYTHING = [[
local rf = require "returnflow"
return {
  ["return.created"] = function(ret, out)
    out:profile{ first_name = "Mary", properties = { loyalty = "gold" } }
    out:segment("returner")
    out:unsegment("first-timer")
    out:track("Everything", { list = rf.array(), nested = { a = { b = 1 } } }, { value = 1.5, currency = "EUR" })
    out:subscribe("Y6nRLr", { channels = { "email" } })
    out:schedule("later:" .. ret.id, 86400, "Later", {})
    out:cancel("sooner:" .. ret.id)
  end,
  ["return.updated"] = function(ret, out)
    out:profile{ last_name = "G.", properties = { returns = 2 } }
    out:segment("repeat-returner")
  end,
  ["giftcard.requested"] = function(gc, out)
    out:identify{ external_id = "kenji" }
    out:track("Credit", {}, { value = 14080, currency = "JPY", backfill = true })
  end,
}
]]
    local FILES = { RETURN, h.fixture_path("return.updated.cancelled.json"), GIFTCARD }

    it("accepts every request these mappings make with a private key", function()
      local scripts = h.scripts_dir({ ["10-everything.lua"] = EVERYTHING })
      local _, run = h.map(FILES, { scripts = scripts })

      local report, code = h.validate(run.stdout)

      assert.equal(0, code, report)
      assert.truthy(report:find("validated 5 requests, 0 invalid", 1, true), report)
    end)

    it("accepts every request these mappings make with a public key", function()
      local scripts = h.scripts_dir({ ["10-everything.lua"] = EVERYTHING })
      local _, run = h.map(FILES, { scripts = scripts, args = { "--key-kind", "public", "--site-id", "AbC123" } })

      local report, code = h.validate(run.stdout)

      assert.equal(0, code, report)
      assert.truthy(report:find("validated 5 requests, 0 invalid", 1, true), report)
    end)
  end)
end)
