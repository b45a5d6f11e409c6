return {
  name = "return-confirmation-no-label",
  title = "Return confirmation (no label or keep item)",
  description = "Confirms a return that ships without a label, or whose items the customer keeps, "
    .. "when the return is created: the items, the status page and, unless kept, the day to send them by.",
  kind = "flow",
  handlers = "61-return-confirmation-no-label.lua",
  metric = "Loop Return Created",
  fixtures = {     -- every shipped return has a label: variants of return.created.json without one
    { "return.created.json", { labels_enabled = false } },
    { "return.created.json", { keep_item = true } },
  },
  replaces_loop_email = "Return Confirmation without Shipping Labels",
  email = {
    subject = "Your return for order {{ event.order }} is confirmed",
    preview_text = "{% if event.keep_item %}There is nothing to send back.{% else %}Send your items back by "
      .. "{{ event.return_by|date:'F j, Y' }}.{% endif %}",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return confirmation (no label)",
    trigger_filter = {     -- Loop's own filter: no label, or the items are kept (one group: either)
      condition_groups = {
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "labels_enabled",
            filter = { type = "boolean", operator = "equals", value = false } },
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "keep_item",
            filter = { type = "boolean", operator = "equals", value = true } },
        } },
      },
    },
    delay = nil,
  },
}
