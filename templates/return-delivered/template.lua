return {
  name = "return-delivered",
  title = "Return delivered",
  description = "Tells the customer their parcel reached the warehouse and that the refund, credit or exchange "
    .. "comes next, when the label update says delivered.",
  kind = "flow",
  handlers = "63-return-delivered.lua",
  metric = "Loop Label Updated",
  fixtures = { "label.updated.delivered.json" },
  replaces_loop_email = "Return Delivered",
  email = {
    subject = "Your return for order {{ event.order }} has arrived",
    preview_text = "We are checking your items now.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return delivered",
    trigger_filter = {
      condition_groups = {
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Label Updated", field = "tracking_status",
            filter = { type = "string", operator = "equals", value = "delivered" } },
        } },
      },
    },
    delay = nil,
  },
}
