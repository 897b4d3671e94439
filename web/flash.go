package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"
)

// flash is what a session keeps for its next page (see store.SetSessionFlash): a notice
// ("User bob created."), and a token just minted, to be shown once. Kept with the session
// rather than in the redirect's URL, so a reload does not show it again, a crafted link cannot
// make a page say anything, and no secret ever sits in a URL.
type flash struct {
	Message string `json:"m,omitempty"`
	Token   string `json:"t,omitempty"` // sealed with sealFor: only this browser's cookie opens it
	For     string `json:"u,omitempty"` // the username the token was minted for
}

// setFlash keeps f for the session's next page. Without a session (a browser signed out
// meanwhile) there is no next page to show it on, and nothing is kept.
func (w *Web) setFlash(ctx *fasthttp.RequestCtx, f flash) {
	s := sessionOf(ctx)
	if s == nil {
		return
	}
	if f.Token != "" {
		sealed, err := sealFor(s.token, f.Token)
		if err != nil {
			w.logger.Error("seal token for its page", "err", err)
			f.Token = ""
		} else {
			f.Token = sealed
		}
	}
	b, err := json.Marshal(f)
	if err == nil {
		err = w.st.SetSessionFlash(dbContext(), s.sess.ID, string(b))
	}
	if err != nil {
		// The change was made; only its notice is lost.
		w.logger.Warn("set session flash", "err", err)
	}
}

// takeFlash returns the session's flash and clears it, so it shows once. The read cost
// nothing (the session's row carries it); the clear is one statement, only when there is one.
func (w *Web) takeFlash(ctx *fasthttp.RequestCtx) flash {
	s := sessionOf(ctx)
	if s == nil || s.sess.Flash == "" {
		return flash{}
	}
	raw := s.sess.Flash
	s.sess.Flash = ""
	if err := w.st.ClearSessionFlash(dbContext(), s.sess.ID, raw); err != nil {
		w.logger.Warn("clear session flash", "err", err)
	}
	var f flash
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		w.logger.Warn("decode session flash", "err", err)
		return flash{}
	}
	if f.Token != "" {
		token, err := openFor(s.token, f.Token)
		if err != nil {
			w.logger.Warn("open sealed token", "err", err)
		}
		f.Token = token
	}
	return f
}

// flashKey derives the key that seals a flash's token from the session's cookie token, which
// the store never holds (it keeps its hash): the database alone cannot open a sealed token.
func flashKey(cookieToken string) []byte {
	m := hmac.New(sha256.New, []byte(cookieToken))
	m.Write([]byte("tierpix session flash token"))
	return m.Sum(nil)
}

// flashAEAD is AES-GCM under flashKey.
func flashAEAD(cookieToken string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(flashKey(cookieToken))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealFor(cookieToken, secret string) (string, error) {
	gcm, err := flashAEAD(cookieToken)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(gcm.Seal(nonce, nonce, []byte(secret), nil)), nil
}

func openFor(cookieToken, sealed string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", err
	}
	gcm, err := flashAEAD(cookieToken)
	if err != nil {
		return "", err
	}
	if len(b) < gcm.NonceSize() {
		return "", errors.New("sealed token too short")
	}
	plain, err := gcm.Open(nil, b[:gcm.NonceSize()], b[gcm.NonceSize():], nil)
	return string(plain), err
}
