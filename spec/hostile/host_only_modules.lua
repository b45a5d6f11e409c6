-- hostile: requires host-only Lua (render, testing, the CLI's modules) from the sandbox
-- expect: harmless
return { ["return.created"] = function(ev, out)
  for _, name in ipairs { "returnflow.render", "returnflow.testing", "returnflow.testing_assertions",
                          "returnflow.cli.install", "returnflow.cli.catalogue", "returnflow.native",
                          "returnflow.emitter", "returnflow.runtime", "returnflow.klaviyo" } do
    if pcall(require, name) then error("required " .. name) end
  end
end }
