package web

import "github.com/valyala/fasthttp"

// Stubs for the admin UI handlers: replaced by their real files.

func (w *Web) handleAdminIndex(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTierList(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTierNew(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTierCreate(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTierEdit(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTierUpdate(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTierConfirm(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTierDelete(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleUserList(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleUserNew(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleUserCreate(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleUserEdit(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleUserUpdate(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleUserConfirm(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleUserDelete(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTokenCreate(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleTokenDelete(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleSessionsDelete(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleImageList(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleImagePreview(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleImageConfirm(ctx *fasthttp.RequestCtx) { panic("not implemented") }
func (w *Web) handleImageDelete(ctx *fasthttp.RequestCtx) { panic("not implemented") }
