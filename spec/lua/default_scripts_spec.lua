-- The default scripts (scripts/*.lua) against every Loop fixture: which Klaviyo events come out, with
-- which properties and profile, and that every request is one Klaviyo's OpenAPI spec accepts.
local h = require "helpers"

-- What scripts/*.lua make of each fixture when it is mapped alone.
local EXPECTED = {
  ["giftcard.requested.json"] = { status = "mapped", metrics = { "Loop Store Credit Issued" } },
  ["label.created.json"] = { status = "deferred", reason = "no customer known for return 8812745 yet" },
  ["label.updated.delivered.json"] = { status = "deferred", reason = "no customer known for return 8812745 yet" },
  ["label.updated.in_transit.json"] = { status = "deferred", reason = "no customer known for return 8812745 yet" },
  ["restock.requested.json"] = { status = "dropped", reason = "restock events have no customer" },
  ["return.closed.json"] = {
    status = "mapped", metrics = { "Loop Refund Issued", "Loop Exchange Order Created" },
    cancelled = { "expiring:8812745", "expired:8812745" },
  },
  ["return.created.gift_return.json"] = {
    status = "mapped", metrics = { "Loop Return Created", "Loop Gift Return Request" },
    scheduled = { "Loop Return Expiring", "Loop Return Expired" },
  },
  ["return.created.json"] = {
    status = "mapped", metrics = { "Loop Return Created" },
    scheduled = { "Loop Return Expiring", "Loop Return Expired" },
  },
  ["return.created.store_credit.json"] = {
    status = "mapped", metrics = { "Loop Return Created" },
    scheduled = { "Loop Return Expiring", "Loop Return Expired" },
  },
  ["return.processing.failed.json"] = { status = "dropped", reason = "processing failures are merchant-side" },
  ["return.updated.cancelled.json"] = {
    status = "mapped", metrics = { "Loop Return Status Updated", "Loop Return Cancelled" },
    cancelled = { "expiring:8812745", "expired:8812745" },
  },
  ["return.updated.closed.json"] = {
    status = "mapped", metrics = { "Loop Return Status Updated", "Loop Refund Issued", "Loop Exchange Order Created" },
    cancelled = { "expiring:8812745", "expired:8812745" },
  },
  ["return.updated.review_out_of_stock.json"] = {
    status = "mapped", metrics = { "Loop Return Status Updated", "Loop Exchange Out Of Stock" },
  },
}

-- The properties Loop's native Klaviyo events carry (fixtures/loop/README.md).
local NATIVE_PROPERTIES = {
  "event_id", "return_id", "return_status", "order", "product_names", "product_images", "product_skus",
  "product_variant_titles", "returned_product_skus", "returned_product_names",
  "returned_product_variant_titles", "returned_product_images", "returned_product_types", "return_reasons",
  "return_reason_parents", "return_outcome", "return_destination", "status_page_url", "labels_enabled",
  "keep_item", "label", "tracking_number", "tracking_url", "tracking_status",
}

local function all_fixture_paths()
  local paths = {}
  for i, name in ipairs(h.fixture_names()) do paths[i] = h.fixture_path(name) end
  return paths
end

local function first_event(doc) return doc.requests[1].body.data.attributes end

describe("default scripts", function()
  teardown(h.cleanup)

  describe("each fixture mapped alone", function()
    it("has an expectation for every fixture in the fixtures folder", function()
      local names = h.fixture_names()

      local missing = {}
      for _, name in ipairs(names) do
        if not EXPECTED[name] then missing[#missing + 1] = name end
      end

      assert.is_true(#names >= 13)
      assert.same({}, missing)
    end)

    for _, name in ipairs(h.fixture_names()) do
      local want = EXPECTED[name]
      if want then
        local as = want.metrics and " as " .. table.concat(want.metrics, ", ") or ""
        it(name .. " is " .. want.status .. as, function()
          local docs, run = h.map(h.fixture_path(name))

          assert.equal(0, run.code)
          assert.equal(1, #docs)
          local doc = docs[1]
          assert.equal(want.status, doc.status)
          if want.reason then assert.truthy(doc.reason:find(want.reason, 1, true), doc.reason) end
          assert.same(want.metrics or {}, h.metrics(doc))
          assert.same(want.scheduled or {}, h.scheduled_metrics(doc))
          assert.same(want.cancelled or {}, doc.cancelled)
        end)
      end
    end
  end)

  describe("return events", function()
    it("carry every native Loop property, null where Loop has no value", function()
      local files = {}
      for _, name in ipairs(h.fixture_names()) do
        if name:match("^return%.[a-z]+%.") and not name:match("processing") then
          files[#files + 1] = h.fixture_path(name)
        end
      end

      local docs = h.map(files)

      local absent, events = {}, 0
      for _, doc in ipairs(docs) do
        for _, r in ipairs(doc.requests) do
          events = events + 1
          local props = r.body.data.attributes.properties
          for _, name in ipairs(NATIVE_PROPERTIES) do
            if props[name] == nil and not absent[name] then
              absent[name] = "absent from " .. doc.input:match("[^/]*$") .. " "
                             .. r.body.data.attributes.metric.data.attributes.name
            end
          end
        end
      end
      assert.is_true(events >= 10)
      assert.same({}, absent)
    end)

    it("carry the native properties with Loop's meaning", function()
      local docs = h.map(h.fixture_path("return.created.json"))

      local props = first_event(docs[1]).properties
      assert.equal("return.created", props.event_id)
      assert.equal("8812745", props.return_id)
      assert.equal("open", props.return_status)
      assert.equal("#10482", props.order)
      assert.same({ "TEE-ORG-BLK-M", "TEE-ORG-BLK-M", "JKT-DNM-IND-S" }, props.returned_product_skus)
      assert.same({ "Organic Cotton Tee - Black / M", "Organic Cotton Tee - Black / M",
                    "Denim Trucker Jacket - Indigo / S" }, props.returned_product_names)
      assert.same({ "Black / M", "Black / M", "Indigo / S" }, props.returned_product_variant_titles)
      -- product_*: the returned items, then the exchange items
      assert.same({ "TEE-ORG-BLK-M", "TEE-ORG-BLK-M", "JKT-DNM-IND-S", "TEE-ORG-BLK-L", "TEE-ORG-BLK-L" },
                  props.product_skus)
      assert.same({ "Too small", "Too small", "Didn't like the color" }, props.return_reasons)
      assert.same({ "exchange", "exchange", "refund" }, props.return_outcome)
      assert.equal("https://acme-apparel.loopreturns.com/#/return/4b1f0c8e-2f5d-4a37-9c51-7d0e2a6b9f11",
                   props.status_page_url)
      assert.is_true(props.labels_enabled)
      assert.is_false(props.keep_item)
      assert.equal("N/A", props.tracking_number)
      assert.equal("pending", props.tracking_status)
      assert.equal("2026-10-30", props.return_by)
    end)

    it("keep JSON null where Loop has no parent reason", function()
      local docs = h.map(h.fixture_path("return.created.json"))

      local parents = first_event(docs[1]).properties.return_reason_parents
      assert.equal(3, #parents)
      assert.equal("Item didn't fit", parents[1])
      assert.equal("Item didn't fit", parents[2])
      assert.equal(h.null, parents[3])
      assert.truthy(docs[1].raw:find([=["return_reason_parents":["Item didn't fit","Item didn't fit",null]]=], 1, true))
    end)

    it("carry the last label's URL and tracking status once a label exists", function()
      local docs = h.map(h.fixture_path("return.closed.json"))

      local props = first_event(docs[1]).properties
      assert.equal("https://partner.loopreturns.com/label/8812745", props.label)
      assert.equal("9400111206213859320544", props.tracking_number)
      assert.equal("delivered", props.tracking_status)
      assert.equal("closed", props.return_status)
    end)

    it("carry the total as value 118.8 USD at the return's creation time", function()
      local docs = h.map(h.fixture_path("return.created.json"))

      local event = first_event(docs[1])
      assert.equal(118.8, event.value)
      assert.equal("USD", event.value_currency)
      assert.equal("2026-10-02T14:21:07+00:00", event.time)
    end)

    it("carry JPY amounts as integers (no minor unit)", function()
      local docs = h.map({ h.fixture_path("return.created.store_credit.json"),
                           h.fixture_path("giftcard.requested.json") })

      local ret, credit = first_event(docs[1]), first_event(docs[2])
      assert.equal("JPY", ret.value_currency)
      assert.equal(12800, ret.value)
      assert.equal("integer", math.type(ret.value))
      assert.equal("JPY", credit.value_currency)
      assert.equal(14080, credit.value)
      assert.equal("integer", math.type(credit.value))
      assert.equal(14080, credit.properties.credit_issued)
      assert.truthy(docs[2].raw:find('"value":14080[,}]'))
    end)

    it("put the customer's email, names and address on the profile", function()
      local docs = h.map({ h.fixture_path("return.created.json"), h.fixture_path("return.created.store_credit.json") })

      local maria = first_event(docs[1]).profile.data.attributes
      assert.equal("maria.gonzalez@example.com", maria.email)
      assert.equal("María", maria.first_name)
      assert.equal("González", maria.last_name)
      assert.same({ address1 = "1600 Pine St", address2 = "Apt 4", city = "Seattle", region = "Washington",
                    zip = "98101", country = "United States" }, maria.location)
      local kenji = first_event(docs[2]).profile.data.attributes
      assert.equal("kenji.sato@example.jp", kenji.email)
      assert.equal("健二", kenji.first_name)
      assert.equal("佐藤", kenji.last_name)
    end)

    it("schedule 'expiring' at day 21 and 'expired' at day 28 after creation", function()
      local docs = h.map(h.fixture_path("return.created.json"))

      local s = docs[1].scheduled
      assert.equal(2, #s)
      assert.equal("expiring:8812745", s[1].key)
      assert.equal("2026-10-23T14:21:07+00:00", s[1].at)
      assert.equal("expired:8812745", s[2].key)
      assert.equal("2026-10-30T14:21:07+00:00", s[2].at)
      assert.equal("maria.gonzalez@example.com", s[1].request.body.data.attributes.profile.data.attributes.email)
    end)

    it("add 'Loop Gift Return Request' for a gift return, on the recipient's profile", function()
      local docs = h.map(h.fixture_path("return.created.gift_return.json"))

      assert.same({ "Loop Return Created", "Loop Gift Return Request" }, h.metrics(docs[1]))
      local gift = docs[1].requests[2].body.data.attributes
      assert.equal("gift.recipient@example.org", gift.profile.data.attributes.email)
      assert.equal("8813001", gift.properties.return_id)
    end)
  end)

  describe("label events", function()
    it("map to 'Loop Label Created' with return_by and status_page_url once their return was seen", function()
      local docs, run = h.map({ h.fixture_path("return.created.json"), h.fixture_path("label.created.json") })

      assert.equal(0, run.code)
      local label = h.doc_for(docs, "label.created.json")
      assert.equal("mapped", label.status)
      assert.same({ "Loop Label Created" }, h.metrics(label))
      local event = first_event(label)
      assert.equal("2026-10-30", event.properties.return_by)
      assert.equal("https://acme-apparel.loopreturns.com/#/return/4b1f0c8e-2f5d-4a37-9c51-7d0e2a6b9f11",
                   event.properties.status_page_url)
      assert.equal("#10482", event.properties.order)
      assert.equal("https://partner.loopreturns.com/label/8812745", event.properties.label)
      assert.equal("9400111206213859320544", event.properties.tracking_number)
      assert.equal("maria.gonzalez@example.com", event.profile.data.attributes.email)
    end)

    it("map to 'Loop Label Updated' and cancel the expiry reminders once the parcel moves", function()
      local docs = h.map({ h.fixture_path("return.created.json"), h.fixture_path("label.updated.in_transit.json"),
                           h.fixture_path("label.updated.delivered.json") })

      for _, file in ipairs({ "label.updated.in_transit.json", "label.updated.delivered.json" }) do
        local label = h.doc_for(docs, file)
        assert.equal("mapped", label.status)
        assert.same({ "Loop Label Updated" }, h.metrics(label))
        assert.equal("2026-10-30", first_event(label).properties.return_by)
        assert.same({ "expiring:8812745", "expired:8812745" }, label.cancelled)
      end
      local moving = first_event(h.doc_for(docs, "label.updated.in_transit.json"))
      assert.equal("in_transit", moving.properties.tracking_status)
    end)

    it("that come before their return in the same run are tried again after it", function()
      local docs, run = h.map({ h.fixture_path("label.created.json"), h.fixture_path("return.created.json") })

      assert.equal(0, run.code)
      assert.equal(2, #docs)
      assert.equal("return.created", docs[1].trigger)
      assert.equal("label.created", docs[2].trigger)
      assert.equal("mapped", docs[2].status)
      assert.same({ "Loop Label Created" }, h.metrics(docs[2]))
    end)
  end)

  describe("Loop's whole payload", function()
    local function fixture_variant(name, overrides)
      local ev = h.fixture(name)
      for k, v in pairs(overrides) do ev[k] = v end
      return ev
    end
    local function event_of(doc, metric)
      for _, r in ipairs(doc.requests) do
        local a = r.body.data.attributes
        if a.metric and a.metric.data.attributes.name == metric then return a end
      end
    end

    it("puts the Shopify order id and the carrier on return events", function()
      local docs = h.map(h.fixture_path("return.closed.json"))

      local refund = event_of(docs[1], "Loop Refund Issued").properties
      assert.equal("5839210048821", refund.provider_order_id)
      assert.equal("USPS", refund.carrier)
    end)

    it("gives label events the return's properties, the label's own values first", function()
      local docs = h.map({ h.fixture_path("return.created.json"), h.fixture_path("label.updated.in_transit.json") })

      local p = event_of(h.doc_for(docs, "label.updated.in_transit.json"), "Loop Label Updated").properties
      for _, name in ipairs(NATIVE_PROPERTIES) do assert.is_not_nil(p[name], name) end
      assert.same({ "Too small", "Too small", "Didn't like the color" }, p.return_reasons)
      assert.same({ "exchange", "exchange", "refund" }, p.return_outcome)
      assert.equal("open", p.return_status)
      assert.equal("in_transit", p.tracking_status)
      assert.equal("USPS", p.carrier)
      assert.equal("shp_7c1e04a9d2b6", p.shipment_id)
      assert.equal("5839210048821", p.provider_order_id)
    end)

    it("gives store credit its return's time (it has none of its own), so a backfill lands on the day", function()
      local docs = h.map({ h.fixture_path("return.created.store_credit.json"), h.fixture_path("giftcard.requested.json") })

      local credit = event_of(h.doc_for(docs, "giftcard.requested.json"), "Loop Store Credit Issued")
      assert.equal("2026-10-02T14:21:07+00:00", credit.time)
      assert.equal("5839210093001", credit.properties.provider_order_id)
    end)

    it("sends every property the defaults set whether or not Loop sent its value: null when it did not", function()
      -- Each fixture as Loop sent it, then with every optional value gone: the same metrics must carry the
      -- same property names (a flow author filters on a property that is always there).
      local function sparse(ev)
        for _, k in ipairs({ "order_name", "provider_order_id", "status_page_url", "destination", "carrier",
                             "tracking_number", "tracking_url", "label_url", "shipment_id", "currency",
                             "external_order_name", "external_order_id", "gift_card_subtotal", "gift_card_tax",
                             "gift_card_bonus_credit", "total_credit_issued", "labels", "label_status" }) do
          ev[k] = nil
        end
        if ev.topic == "giftcard" then ev.id = h.null end
        for _, x in ipairs(ev.exchanges or {}) do x.exchange_order_id = nil end
        return ev
      end
      local names = { "return.created.json", "label.created.json", "label.updated.in_transit.json",
                      "return.updated.closed.json", "giftcard.requested.json" }
      local full, bare = {}, {}
      for i, name in ipairs(names) do full[i], bare[i] = h.fixture(name), sparse(h.fixture(name)) end
      local function property_names(events)
        local docs, run = h.map(h.ndjson_file(events))
        assert.equal(0, run.code, run.stderr)
        local by_metric = {}
        for _, doc in ipairs(docs) do
          assert.equal("mapped", doc.status, doc.reason)
          for _, r in ipairs(doc.requests) do
            local a = r.body.data.attributes
            local list = {}
            for k in pairs(a.properties) do list[#list + 1] = k end
            table.sort(list)
            by_metric[a.metric.data.attributes.name] = table.concat(list, " ")
          end
        end
        return by_metric, docs
      end

      local want = property_names(full)
      local got, docs = property_names(bare)

      local metrics = {}
      for m in pairs(want) do metrics[#metrics + 1] = m end
      table.sort(metrics)
      assert.same({ "Loop Exchange Order Created", "Loop Label Created", "Loop Label Updated", "Loop Refund Issued",
                    "Loop Return Created", "Loop Return Status Updated", "Loop Store Credit Issued" }, metrics)
      assert.same(want, got)
      local credit = event_of(docs[5], "Loop Store Credit Issued").properties
      assert.equal(h.null, credit.currency)
      assert.equal(h.null, credit.order)
      local label = event_of(docs[2], "Loop Label Created").properties
      assert.equal(h.null, label.status_page_url)
      assert.equal(h.null, label.order)
    end)

    it("tracks 'Loop Out Of Stock Resolved' once Loop sends the resolution", function()
      local ev = h.fixture("return.updated.review_out_of_stock.json")
      ev.state = "open"
      ev.exchanges[1].out_of_stock_resolution = "store_credit"
      local docs = h.map(h.event_file(ev))

      assert.same({ "Loop Return Status Updated", "Loop Out Of Stock Resolved" }, h.metrics(docs[1]))
      assert.equal("store_credit", event_of(docs[1], "Loop Out Of Stock Resolved").properties.out_of_stock_resolution)
    end)

    it("has a handler for every trigger Loop sends: none is dropped for want of one", function()
      local triggers = { "return.created", "return.updated", "return.closed", "label.created", "label.updated",
                         "restock.requested", "giftcard.requested", "shipment.processed", "label.request.issued",
                         "label.request.cancelled", "return.processing.failed" }
      local events = {}
      for i, trigger in ipairs(triggers) do events[i] = { topic = trigger:match("^(.*)%.[^.]+$"), trigger = trigger,
                                                          id = "1", return_id = "1" } end
      local docs = h.map(h.ndjson_file(events))

      assert.equal(#triggers, #docs)
      for _, doc in ipairs(docs) do
        assert.is_nil(tostring(doc.reason):find("no handler", 1, true), doc.trigger .. ": " .. tostring(doc.reason))
      end
    end)

    it("count each customer's returns: returns_count and first_return, the same under replay and out of order",
       function()
      local first = fixture_variant("return.created.json", {})
      local second = fixture_variant("return.created.json", { id = "8899001", created_at = "2026-11-20T09:00:00+00:00" })
      -- live order, then the first again (a replay), then a backfill that brings the later one first
      local docs = h.map(h.ndjson_file({ first, second, first }))
      local counts = {}
      for i, doc in ipairs(docs) do
        local p = event_of(doc, "Loop Return Created").properties
        counts[i] = { p.returns_count, p.first_return }
      end
      assert.same({ { 1, true }, { 2, false }, { 1, true } }, counts)

      docs = h.map(h.ndjson_file({ second, first, second }))
      counts = {}
      for i, doc in ipairs(docs) do
        local p = event_of(doc, "Loop Return Created").properties
        counts[i] = { p.returns_count, p.first_return }
      end
      -- the later return, seen alone, is a first; once the earlier one is known, it is the second
      assert.same({ { 1, true }, { 1, true }, { 2, false } }, counts)
    end)
  end)

  describe("a merchant's changes over the defaults", function()
    -- A later release of the defaults: this copy of scripts/ with one fix, a property every return
    -- event gains. The merchant's file renames a metric and adds a property, and must not fork them.
    local MINE = [[
return { changes = {
  ["Loop Return Created"] = { metric = "Return Started",
    properties = { shopify_order_id = function(ret) return ret.provider_order_id end } },
} }
]]
    local function folder(fixed, mine)
      local dir = h.tempdir() .. "/scripts"
      h.sh_ok("cp -R " .. h.quote(h.scripts) .. " " .. h.quote(dir))
      if fixed then
        local path = dir .. "/10-returns.lua"
        local text, n = h.read(path):gsub("local props = loop%.properties%(ret%)\n",
                                          "local props = loop.properties(ret)\n  props.fixed_later = true\n")
        assert.equal(1, n)
        h.write(path, text)
      end
      if mine then h.write(dir .. "/50-mine.lua", MINE) end
      return dir
    end
    -- Every tracked and scheduled event of a run: { metric, properties, value, time }, in order.
    local function events(dir)
      local docs, run = h.map(all_fixture_paths(), { scripts = dir })
      assert.equal(0, run.code, run.stderr)
      local list = {}
      for _, doc in ipairs(docs) do
        for _, r in ipairs(doc.requests) do list[#list + 1] = r.body.data.attributes end
        for _, sch in ipairs(doc.scheduled) do list[#list + 1] = sch.request.body.data.attributes end
      end
      for i, a in ipairs(list) do
        list[i] = { metric = a.metric and a.metric.data.attributes.name, properties = a.properties, value = a.value,
                    time = a.time }
      end
      return list
    end
    -- The merchant's edits, applied by hand to an event of the defaults.
    local function edited(e)
      if e.metric ~= "Loop Return Created" then return e end
      local p = {}
      for k, v in pairs(e.properties) do p[k] = v end
      p.shopify_order_id = "5839210048821"
      return { metric = "Return Started", properties = p, value = e.value, time = e.time }
    end

    it("reach the customized folder unchanged apart from the merchant's edits", function()
      local shipped, later = events(folder(false, false)), events(folder(true, false))
      local mine_shipped, mine_later = events(folder(false, true)), events(folder(true, true))

      assert.equal(#shipped, #later)
      local fixed = 0
      for i, e in ipairs(later) do
        if e.properties and e.properties.fixed_later then fixed = fixed + 1 end
        assert.same(edited(shipped[i]), mine_shipped[i])
        assert.same(edited(e), mine_later[i])      -- the fix is there, the edits too, nothing else differs
      end
      assert.is_true(fixed > 0, "the later release changed nothing")
    end)
  end)

  describe("unique_id", function()
    it("is deterministic and differs per metric of one webhook", function()
      local file = h.fixture_path("return.created.gift_return.json")

      local first = h.map(file)[1]
      local second = h.map(file)[1]

      local ids, seen = {}, {}
      for _, r in ipairs(first.requests) do ids[#ids + 1] = r.body.data.attributes.unique_id end
      for _, s in ipairs(first.scheduled) do ids[#ids + 1] = s.request.body.data.attributes.unique_id end
      assert.equal(4, #ids)
      for _, id in ipairs(ids) do
        assert.is_string(id)
        assert.is_nil(seen[id], "unique_id repeated: " .. id)
        seen[id] = true
      end
      assert.equal(first.requests[1].body.data.attributes.unique_id, second.requests[1].body.data.attributes.unique_id)
      assert.truthy(ids[1]:find("8813001", 1, true))
    end)

    it("is one per store credit, not per return: the gift card id, else (Loop's automatic out-of-stock gift card, "
       .. "id null) the return and amount; a retry repeats it", function()
      local outcome = h.fixture("giftcard.requested.json")
      local other = h.fixture("giftcard.requested.json")
      other.id = 552302
      local automatic = h.fixture("giftcard.requested.json")
      automatic.id = h.null
      automatic.total_credit_issued = "3200"
      local docs = h.map(h.ndjson_file({ outcome, other, automatic, outcome, automatic }))

      local ids = {}
      for i, doc in ipairs(docs) do ids[i] = first_event(doc).unique_id end
      assert.same({ "store-credit:552301", "store-credit:552302", "store-credit:8812990:out-of-stock:3200",
                    "store-credit:552301", "store-credit:8812990:out-of-stock:3200" }, ids)
      assert.equal(h.null, first_event(docs[3]).properties.giftcard_id)
    end)

    it("names the tenant", function()
      local file = h.fixture_path("return.created.json")

      local plain = h.map(file)[1]
      local acme = h.map(file, { args = { "--tenant", "acme" } })[1]

      local a = first_event(plain).unique_id
      local b = first_event(acme).unique_id
      assert.are_not.equal(a, b)
      assert.truthy(b:find("acme", 1, true))
    end)
  end)

  describe("output", function()
    it("is byte-identical across two runs", function()
      local files = all_fixture_paths()

      local _, one = h.map(files)
      local _, two = h.map(files)

      assert.equal(#files, #one.lines)
      assert.equal(one.stdout, two.stdout)
    end)

    it("validates against Klaviyo's OpenAPI spec, every request of every fixture", function()
      local _, run = h.map(all_fixture_paths())

      local report, code = h.validate(run.stdout)

      assert.equal(0, code, report)
      local n = tonumber(report:match("validated (%d+) requests?, 0 invalid"))
      assert.truthy(n, report)
      assert.is_true(n >= 20)
    end)

    it("fails validation when a field is misspelt (the validator is strict)", function()
      local _, run = h.map(h.fixture_path("return.created.json"))
      local typo = run.stdout:gsub('"value_currency"', '"value_curency"')

      local report, code = h.validate(typo)

      assert.equal(1, code)
      assert.truthy(report:find("/body/data/attributes: unknown property 'value_curency'", 1, true), report)
      assert.truthy(report:find("validated 3 requests, 1 invalid", 1, true), report)
    end)

    it("uses /client/ endpoints with company_id and no Authorization for a public key, and still validates", function()
      local _, run = h.map(all_fixture_paths(), { args = { "--key-kind", "public", "--site-id", "AbC123" } })
      local docs = {}
      for i, line in ipairs(run.lines) do docs[i] = h.decode(line) end

      local count = 0
      for _, doc in ipairs(docs) do
        local all = {}
        for _, r in ipairs(doc.requests) do all[#all + 1] = r end
        for _, s in ipairs(doc.scheduled) do all[#all + 1] = s.request end
        for _, r in ipairs(all) do
          count = count + 1
          assert.equal("/client/events?company_id=AbC123", r.path)
          assert.is_nil(r.headers.Authorization)
          assert.equal("application/vnd.api+json", r.headers["Content-Type"])
        end
      end
      assert.is_true(count >= 20)
      local report, code = h.validate(run.stdout)
      assert.equal(0, code, report)
    end)

    it("marks every event backfill: true with --backfill, and still validates", function()
      local _, run = h.map(all_fixture_paths(), { args = { "--backfill" } })

      local count = 0
      for _, line in ipairs(run.lines) do
        local doc = h.decode(line)
        for _, r in ipairs(doc.requests) do
          count = count + 1
          assert.is_true(r.body.data.attributes.backfill)
        end
        for _, s in ipairs(doc.scheduled) do assert.is_true(s.request.body.data.attributes.backfill) end
      end
      assert.is_true(count > 0)
      local report, code = h.validate(run.stdout)
      assert.equal(0, code, report)
    end)

    it("carries no backfill flag without --backfill (flows fire)", function()
      local docs = h.map(h.fixture_path("return.created.json"))

      assert.is_nil(first_event(docs[1]).backfill)
    end)
  end)

  describe("64-bit ids", function()
    it("stay exact when a script copies them into properties", function()
      local ret = h.fixture("return.created.json")
      ret.line_items[1].provider_line_item_id = 13377290551445        -- Loop sometimes sends ids as numbers
      ret.big_id = 9007199254740993                                     -- 2^53 + 1: no double holds it
      ret.max_id = math.maxinteger
      local file = h.event_file(ret)
      local scripts = h.scripts_dir({ ["10-ids.lua"] = [[
return {
  ["return.created"] = function(ret, out)
    out:track("Ids", {
      provider_line_item_id = ret.line_items[1].provider_line_item_id,
      text_id = ret.line_items[3].provider_line_item_id,
      big_id = ret.big_id,
      max_id = ret.max_id,
    })
  end,
}
]] })

      local docs, run = h.map(file, { scripts = scripts })

      assert.equal(0, run.code, run.stderr)
      local raw = docs[1].raw
      assert.truthy(raw:find('"provider_line_item_id":13377290551445[,}]'), raw)
      assert.truthy(raw:find('"text_id":"13377290584213"', 1, true), raw)
      assert.truthy(raw:find('"big_id":9007199254740993[,}]'), raw)
      assert.truthy(raw:find('"max_id":9223372036854775807[,}]'), raw)
      assert.equal(9007199254740993, first_event(docs[1]).properties.big_id)
    end)
  end)
end)
