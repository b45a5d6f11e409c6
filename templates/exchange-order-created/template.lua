return {
  name = "exchange-order-created",
  title = "Exchange order created",
  description = "Tells the customer their exchange order was placed, with its name and items, when Loop closes "
    .. "the return and creates the exchange order.",
  kind = "flow",
  handlers = "68-exchange-order-created.lua",
  metric = "Loop Exchange Order Created",
  fixtures = { "return.updated.closed.json", "return.closed.json" },
  replaces_loop_email = "Exchange Order Created",
  email = {
    subject = "Your exchange order {{ event.exchange_order }} is on its way",
    preview_text = "The new items for your return on order {{ event.order }}.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Exchange order created",
    trigger_filter = nil,
    delay = nil,
  },
}
