return {
  name = "return-in-transit",
  title = "Return in transit",
  description = "Tells the customer the carrier has their parcel, with the tracking number and the items, "
    .. "on the first label update that shows it moving (in transit or out for delivery).",
  kind = "flow",
  handlers = "62-return-in-transit.lua",
  metric = "Loop Label Updated",
  fixtures = { "label.updated.in_transit.json",   -- and a parcel whose first update is out_for_delivery
               { "label.updated.in_transit.json", { label_status = "out_for_delivery" } } },
  replaces_loop_email = "Return In Transit",
  email = {
    subject = "Your return for order {{ event.order }} is on its way",
    preview_text = "{{ event.carrier|default:'The carrier' }} has your parcel.",
    html = "email.html", text = "email.txt",
    logo_url = nil,   -- your logo, https://... (shown 40 px high); nil: the store's initial and name
  },
  flow = {
    name = "returnflow: Return in transit",
    trigger_filter = {     -- condition groups are all required (AND); conditions of one group are either (OR)
      condition_groups = {
        { conditions = {   -- moving: in transit, or out for delivery (a parcel may skip in_transit)
          { type = "metric-property", metric_id = "metric:Loop Label Updated", field = "tracking_status",
            filter = { type = "string", operator = "equals", value = "in_transit" } },
          { type = "metric-property", metric_id = "metric:Loop Label Updated", field = "tracking_status",
            filter = { type = "string", operator = "equals", value = "out_for_delivery" } },
        } },
        { conditions = {   -- and the return's first move (the handler's first_move): one email per return
          { type = "metric-property", metric_id = "metric:Loop Label Updated", field = "first_move",
            filter = { type = "boolean", operator = "equals", value = true } },
        } },
      },
    },
    delay = nil,
  },
}
