return {
  name = "return-outcome-exchange",
  title = "Return confirmation: exchange",
  description = "Confirms a return that includes an exchange, with the new items, when the return is created (one of "
    .. "three flows on \"Loop Return Created\" split by return_outcome: exchange first, then refund, then "
    .. "store credit, so each return gets one).",
  kind = "flow",
  handlers = "73-return-outcome-exchange.lua",
  metric = "Loop Return Created",
  fixtures = { "return.created.json" },
  email = {
    subject = "Your exchange for order {{ event.order }} is confirmed",
    preview_text = "Your new items ship once your return is processed.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return confirmation: exchange",
    trigger_filter = {     -- condition groups are all required (AND); conditions of one group are either (OR)
      condition_groups = {
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "return_outcome",
            filter = { type = "list", operator = "contains", value = "exchange" } },
        } },
      },
    },
    delay = nil,
  },
}
