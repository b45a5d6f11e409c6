return {
  name = "return-confirmation",
  title = "Return confirmation (with label)",
  description = "Sends the return label, the items to pack, the status page and the day the return expires, "
    .. "as soon as Loop has created the label.",
  kind = "flow",
  handlers = "60-return-confirmation.lua",
  metric = "Loop Label Created",
  fixtures = { "label.created.json" },
  replaces_loop_email = "Return Confirmation",
  email = {
    subject = "Your return for order {{ event.order }} is ready to ship",
    preview_text = "Print your label and send your items back by {{ event.return_by|date:'F j, Y' }}.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return confirmation",
    trigger_filter = nil,
    delay = nil,
  },
}
