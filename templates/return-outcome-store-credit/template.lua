return {
  name = "return-outcome-store-credit",
  title = "Return confirmation: store credit",
  description = "Confirms a return that ends in store credit (no exchange, no refund), with the amount, when the "
    .. "return is created (one of three flows on \"Loop Return Created\" split by return_outcome).",
  kind = "flow",
  handlers = "79-return-outcome-store-credit.lua",
  metric = "Loop Return Created",
  fixtures = { "return.created.store_credit.json" },
  email = {
    subject = "Your store credit for order {{ event.order }} is confirmed",
    preview_text = "Store credit comes once your items are back.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return confirmation: store credit",
    trigger_filter = {     -- condition groups are all required (AND); conditions of one group are either (OR)
      condition_groups = {
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "return_outcome",
            filter = { type = "list", operator = "contains", value = "store_credit" } },
        } },
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "return_outcome",
            filter = { type = "list", operator = "not-contains", value = "exchange" } },
        } },
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "return_outcome",
            filter = { type = "list", operator = "not-contains", value = "refund" } },
        } },
      },
    },
    delay = nil,
  },
}
