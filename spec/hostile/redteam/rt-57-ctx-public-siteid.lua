-- hostile: switches the event's settings to the public key kind with a site id that carries a host ("x@127.0.0.1:9/#", "../../"), so paths become /client/...?company_id=<script text>; the settings must be the host's (exfiltration: site id; state leak: settings)
-- expect: harmless
return {
  ["return.created"] = function(_, out)
    pcall(function()
      out.ctx.key_kind = "public"
      out.ctx.site_id = "x@127.0.0.1:9/../../#"
    end)
  end,
}
