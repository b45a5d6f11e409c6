return {
  name = "gift-returners",
  title = "Gift returners",
  description = "A segment of everyone who has returned a gift: its handler tags them \"gift-returner\" in the "
    .. "profile property returnflow_segments, which the segment reads.",
  kind = "segment",
  handlers = "77-gift-returners.lua",
  metric = nil,        -- no metric: the segment reads a profile property
  fixtures = { "return.created.gift_return.json" },
  segment = {
    name = "returnflow: Gift returners",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-property", property = "properties['returnflow_segments']",
            filter = { type = "list", operator = "contains", value = "gift-returner" } },
        } },
      },
    },
  },
}
