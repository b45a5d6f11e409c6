return {
  name = "exchange-out-of-stock",
  title = "Exchange out of stock",
  description = "Tells the customer that an item they chose in exchange is out of stock and that the return is "
    .. "being reviewed, when Loop moves the return to review for that reason.",
  kind = "flow",
  handlers = "69-exchange-out-of-stock.lua",
  metric = "Loop Exchange Out Of Stock",
  fixtures = { "return.updated.review_out_of_stock.json" },
  replaces_loop_email = "Exchange Out Of Stock",
  email = {
    subject = "An item from your exchange for order {{ event.order }} is out of stock",
    preview_text = "We are reviewing your return and will be in touch.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Exchange out of stock",
    trigger_filter = nil,
    delay = nil,
  },
}
