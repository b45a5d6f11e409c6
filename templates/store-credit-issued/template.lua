return {
  name = "store-credit-issued",
  title = "Store credit issued",
  description = "Tells the customer how much store credit they received for their return (bonus included), "
    .. "when Loop issues it (giftcard.requested).",
  kind = "flow",
  handlers = "67-store-credit-issued.lua",
  metric = "Loop Store Credit Issued",
  fixtures = { "giftcard.requested.json" },
  replaces_loop_email = "Store Credit Issued",
  email = {
    subject = "Your store credit for order {{ event.order }} is ready",
    preview_text = "{% if event.currency_decimals %}{{ event.credit_amount|floatformat:2 }}{% else %}"
      .. "{{ event.credit_amount|floatformat:0 }}{% endif %} {{ event.currency }} to spend at {{ organization.name }}.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Store credit issued",
    trigger_filter = {     -- credit was issued: Loop may send giftcard.requested for none
      condition_groups = {
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Store Credit Issued", field = "credit_issued",
            filter = { type = "numeric", operator = "greater-than", value = 0 } },
        } },
      },
    },
    delay = nil,
  },
}
