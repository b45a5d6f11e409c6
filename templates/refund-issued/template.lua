return {
  name = "refund-issued",
  title = "Refund issued",
  description = "Tells the customer how much was refunded and for which items, when Loop closes the return "
    .. "with a refund.",
  kind = "flow",
  handlers = "66-refund-issued.lua",
  metric = "Loop Refund Issued",
  fixtures = { "return.updated.closed.json", "return.closed.json" },
  replaces_loop_email = "Refund Issued",
  email = {
    subject = "Your refund for order {{ event.order }} is on its way",
    preview_text = "We refunded {% if event.currency_decimals %}{{ event.refund_amount|floatformat:2 }}{% else %}"
      .. "{{ event.refund_amount|floatformat:0 }}{% endif %} {{ event.currency }} to your original payment method.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Refund issued",
    trigger_filter = nil,
    delay = nil,
  },
}
