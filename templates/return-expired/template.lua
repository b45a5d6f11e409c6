return {
  name = "return-expired",
  title = "Return expired (day 28)",
  description = "Tells the customer, 28 days after a return with a label was created and never shipped, that the "
    .. "label has expired; not sent once the parcel moves or the return is closed or cancelled.",
  kind = "flow",
  handlers = "65-return-expired.lua",
  metric = "Loop Return Expired",
  fixtures = { "return.created.json", "return.created.gift_return.json", "return.created.store_credit.json" },
  replaces_loop_email = "Return Expired",
  email = {
    subject = "Your return for order {{ event.order }} has expired",
    preview_text = "The return label expired on {{ event.expired_on|date:'F j, Y' }}.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return expired",
    trigger_filter = nil,
    delay = nil,       -- the defaults schedule the event at day 28 (out:schedule), so the flow sends at once
  },
}
