-- hostile: burns 90% of the cap in every event with allocation churn (GC work counted too): each event maps, none is killed, the thread is not starved past its cap (watchdog: many events near the cap)
-- expect: harmless
return {
  ["*"] = function()
    local t = os.clock() + 0.45
    local keep
    while os.clock() < t do keep = { ("x"):rep(100), {}, {} } end
    return keep
  end,
}
