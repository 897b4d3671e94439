package api

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// maxTokenLength is far above any token the store mints; longer values are refused without a
// database round trip.
const maxTokenLength = 256

func errUnauthorized(msg string) error { return tierpix.Errorf(tierpix.EUNAUTHORIZED, "%s", msg) }

// credential is how a request was authenticated.
type credential int

const (
	bySession credential = iota + 1 // the web UI's session cookie
	byBearer                        // an API token
	byBasic                         // a username and password
)

// authenticate returns the caller of a request from its Authorization header, or else from
// the web UI's session cookie. Either way it costs one query (Basic: one more per failure, and
// a few on a password not verified recently), and the tier comes with the user, so a tier
// change applies to the very next request.
func (a *API) authenticate(ctx *fasthttp.RequestCtx) (id tierpix.Identity, by credential, err error) {
	h := bytes.TrimSpace(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if len(h) == 0 {
		if a.browser != nil {
			id, ok, err := a.browser.Identify(ctx)
			if err != nil {
				return tierpix.Identity{}, 0, fmt.Errorf("identify session: %w", err)
			}
			if ok {
				return id, bySession, nil
			}
		}
		return tierpix.Identity{}, 0, errUnauthorized("Authentication is required: send a Bearer token or HTTP Basic credentials, or sign in at /login.")
	}
	scheme, cred, _ := bytes.Cut(h, []byte(" "))
	cred = bytes.TrimSpace(cred)
	switch strings.ToLower(string(scheme)) {
	case "bearer":
		id, err = a.authenticateToken(ctx, string(cred))
		return id, byBearer, err
	case "basic":
		id, err = a.authenticateBasic(ctx, cred)
		return id, byBasic, err
	}
	return tierpix.Identity{}, 0, errUnauthorized("The authorization scheme is not supported: use Bearer or Basic.")
}

func (a *API) authenticateToken(ctx *fasthttp.RequestCtx, token string) (tierpix.Identity, error) {
	if token == "" || len(token) > maxTokenLength {
		return tierpix.Identity{}, errUnauthorized("The token is not valid.")
	}
	id, err := a.st.FindIdentityByToken(dbContext(ctx), token)
	if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
		return tierpix.Identity{}, errUnauthorized("The token is not valid.")
	} else if err != nil {
		return tierpix.Identity{}, fmt.Errorf("find identity by token: %w", err)
	}
	return id, nil
}

// authenticateBasic checks a username and password with the sign-in service, throttled
// exactly like the sign-in form and against the same counts.
func (a *API) authenticateBasic(ctx *fasthttp.RequestCtx, cred []byte) (tierpix.Identity, error) {
	raw, err := base64.StdEncoding.DecodeString(string(cred))
	if err != nil {
		return tierpix.Identity{}, errUnauthorized("The Basic credentials are not valid base64.")
	}
	username, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return tierpix.Identity{}, errUnauthorized("The Basic credentials must be username:password.")
	}
	addr := a.signin.ClientAddr(ctx.RemoteIP(), ctx.Request.Header.PeekAll("X-Forwarded-For"))
	id, err := a.signin.Authenticate(dbContext(ctx), username, password, addr)
	if err != nil {
		if tierpix.ErrorCode(err) == tierpix.EINTERNAL {
			return tierpix.Identity{}, fmt.Errorf("sign in %q: %w", username, err)
		}
		return tierpix.Identity{}, err
	}
	return id, nil
}
