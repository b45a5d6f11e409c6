return {
  name = "first-time-returner",
  title = "First return",
  description = "Welcomes a customer to their first return (the default first_return property, counted per customer "
    .. "in returnflow's memory) and says how it goes, when the return is created.",
  kind = "flow",
  handlers = "72-first-time-returner.lua",
  metric = "Loop Return Created",
  fixtures = { "return.created.json" },
  email = {
    subject = "Your first return with {{ organization.name }}: how it works",
    preview_text = "We have your return for order {{ event.order }}.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: First return",
    trigger_filter = {     -- condition groups are all required (AND); conditions of one group are either (OR)
      condition_groups = {
        { conditions = {
          { type = "metric-property", metric_id = "metric:Loop Return Created", field = "first_return",
            filter = { type = "boolean", operator = "equals", value = true } },
        } },
      },
    },
    delay = nil,
  },
}
