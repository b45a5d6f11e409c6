return {
  name = "return-outcome-refund",
  title = "Return confirmation: refund",
  description = "Confirms a return that ends in a refund (and no exchange), with the amount, when the return is "
    .. "created (one of three flows on \"Loop Return Created\" split by return_outcome).",
  kind = "flow",
  handlers = "74-return-outcome-refund.lua",
  metric = "Loop Return Created",
  fixtures = {     -- return.created.json with its refunded line only (the shipped one has an exchange too)
    { "return.created.json", { exchanges = {}, line_items = {
      { title = "Denim Trucker Jacket - Indigo / S", line_item_id = "77120392", outcome = "refund",
        return_reason = "Didn't like the color" },
    } } },
  },
  email = {
    subject = "Your refund for order {{ event.order }} is confirmed",
    preview_text = "We refund you once your items are back.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return confirmation: refund",
    trigger_filter = {     -- condition groups are all required (AND); conditions of one group are either (OR)
      condition_groups = {
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "return_outcome",
            filter = { type = "list", operator = "contains", value = "refund" } },
        } },
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "return_outcome",
            filter = { type = "list", operator = "not-contains", value = "exchange" } },
        } },
      },
    },
    delay = nil,
  },
}
