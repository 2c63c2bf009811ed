package oauthserver

import "html/template"

const head = `{{define "head"}}<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;line-height:1.5}
label{display:block;margin:.5rem 0}input{width:100%;padding:.5rem;box-sizing:border-box}
button,a.button{display:block;width:100%;margin:.75rem 0;padding:.75rem 1rem;border:0;border-radius:.5rem;background:#0b6bcb;color:#fff;font:inherit;text-decoration:none;text-align:center;cursor:pointer}
button.secondary{background:#e5e7eb;color:#111}.problem{color:#b91c1c}li{margin:.5rem 0}li.focus{font-weight:bold}
li form button{display:inline;width:auto;margin:0 0 0 .5rem;padding:.25rem .75rem}</style>
</head><body>{{end}}`

var (
	loginPage = template.Must(template.New("login").Parse(head + `{{template "head"}}<h1>Sign in</h1>
{{if .Problem}}<p class="problem" id="problem">{{.Problem}}</p>{{end}}
{{range .Providers}}<a class="button" href="{{call $.SSO .ID}}">Continue with {{.Name}}</a>{{end}}
{{if .Password}}<form method="post" action="login">
<input type="hidden" name="id" value="{{.ID}}">
<label>User name <input id="username" name="username" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<button id="signin" type="submit">Sign in</button>
</form>{{end}}
</body></html>`))

	consentPage = template.Must(template.New("consent").Parse(head + `{{template "head"}}<h1>Allow access?</h1>
<p><strong>{{.Client}}</strong> ({{.Host}}) asks to use your account <strong>{{.UserID}}</strong>: to read and send your messages, as this device.</p>
<p>Allow it only if you are signing in to that app.</p>
<form method="post" action="consent">
<input type="hidden" name="id" value="{{.ID}}"><input type="hidden" name="form" value="{{.Form}}">
<button id="allow" type="submit" name="allow" value="1">Allow</button>
<button id="deny" class="secondary" type="submit">Refuse</button>
</form>
<form method="post" action="logout">
<input type="hidden" name="id" value="{{.ID}}"><input type="hidden" name="form" value="{{.Form}}">
<button class="secondary" type="submit">Not you? Sign out</button>
</form>
</body></html>`))

	accountPage = template.Must(template.New("account").Parse(head + `{{template "head"}}<h1>Your account</h1>
<p>Signed in as <strong id="user">{{.UserID}}</strong>.</p>
<h2>Sessions</h2>
<ul id="sessions">{{range .Devices}}<li{{if eq .DeviceID $.Focus}} class="focus"{{end}}>{{if .DisplayName}}{{.DisplayName}}{{else}}{{.DeviceID}}{{end}}
({{.DeviceID}}{{with call $.When .LastSeenTS}}, last seen {{.}}{{end}})
<form method="post" action="account/end" style="display:inline"><input type="hidden" name="form" value="{{$.Form}}">
<input type="hidden" name="device_id" value="{{.DeviceID}}"><button type="submit">Sign out</button></form></li>
{{else}}<li>No sessions.</li>{{end}}</ul>
<form method="post" action="logout"><input type="hidden" name="form" value="{{.Form}}">
<button class="secondary" type="submit">Sign out of this page</button></form>
</body></html>`))

	errorPage = template.Must(template.New("error").Parse(head + `{{template "head"}}<h1>Sign-in problem</h1>
<p class="problem" id="problem">{{.Message}}</p>
</body></html>`))
)
