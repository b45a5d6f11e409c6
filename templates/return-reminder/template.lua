return {
  name = "return-reminder",
  title = "Return reminder (day 21)",
  description = "Reminds the customer, 21 days after a return with a label was created, that it expires in 7 days; "
    .. "not sent once the parcel moves or the return is closed or cancelled.",
  kind = "flow",
  handlers = "64-return-reminder.lua",
  metric = "Loop Return Expiring",
  fixtures = { "return.created.json", "return.created.gift_return.json", "return.created.store_credit.json" },
  replaces_loop_email = "Return Expiring",
  email = {
    subject = "Reminder: send your return for order {{ event.order }} by {{ event.return_by|date:'F j' }}",
    preview_text = "Your return label expires in 7 days.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return reminder",
    trigger_filter = nil,
    delay = nil,       -- the defaults schedule the event at day 21 (out:schedule), so the flow sends at once
  },
}
