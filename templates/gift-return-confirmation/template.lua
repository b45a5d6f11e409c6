return {
  name = "gift-return-confirmation",
  title = "Gift return confirmation",
  description = "Confirms a gift return to the person who received the gift, with the items, the day to send "
    .. "them by and the store credit they will get, when the gift return is created.",
  kind = "flow",
  handlers = "71-gift-return-confirmation.lua",
  metric = "Loop Gift Return Request",
  fixtures = { "return.created.gift_return.json" },
  replaces_loop_email = "Gift Return Confirmation",
  email = {
    subject = "We have your gift return for order {{ event.order }}",
    preview_text = "Store credit comes once the items are back with us.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Gift return confirmation",
    trigger_filter = nil,
    delay = nil,
  },
}
