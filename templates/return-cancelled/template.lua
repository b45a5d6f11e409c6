return {
  name = "return-cancelled",
  title = "Return cancelled",
  description = "Tells the customer their return was cancelled and that no refund, credit or exchange will come "
    .. "of it, when Loop moves the return to cancelled.",
  kind = "flow",
  handlers = "70-return-cancelled.lua",
  metric = "Loop Return Cancelled",
  fixtures = { "return.updated.cancelled.json" },
  replaces_loop_email = "Return Cancelled",
  email = {
    subject = "Your return for order {{ event.order }} was cancelled",
    preview_text = "No refund, store credit or exchange will be issued for it.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return cancelled",
    trigger_filter = nil,
    delay = nil,
  },
}
