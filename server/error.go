package server

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// statusOf is the one mapping from application error code to HTTP status (SPEC §1).
func statusOf(code string) int {
	switch code {
	case stream.CodeValidation:
		return fiber.StatusBadRequest
	case stream.CodeUnauthorized:
		return fiber.StatusUnauthorized
	case stream.CodeInsufficientFunds:
		return fiber.StatusPaymentRequired
	case stream.CodeForbidden:
		return fiber.StatusForbidden
	case stream.CodeNotFound:
		return fiber.StatusNotFound
	case stream.CodeSlugTaken:
		return fiber.StatusConflict
	case stream.CodePayloadTooLarge:
		return fiber.StatusRequestEntityTooLarge
	case stream.CodeRateLimited:
		return fiber.StatusTooManyRequests
	case stream.CodeLLM, stream.CodeTool:
		return fiber.StatusBadGateway
	case stream.CodeUnavailable:
		return fiber.StatusServiceUnavailable
	case stream.CodeTimeout:
		return fiber.StatusGatewayTimeout
	}
	return fiber.StatusInternalServerError
}

// errorBody is the JSON envelope of every error answer.
type errorBody struct {
	Error *stream.Error `json:"error"`
}

// asAppError turns any error into a caller-safe *stream.Error; the second result says whether
// the original was unexpected (and so worth logging in full).
func asAppError(err error) (*stream.Error, bool) {
	var se *stream.Error
	if errors.As(err, &se) {
		return se, false
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusRequestEntityTooLarge:
			return stream.Errorf(stream.CodePayloadTooLarge, "request body too large"), false
		case fiber.StatusNotFound:
			return stream.Errorf(stream.CodeNotFound, "no such route"), false
		case fiber.StatusMethodNotAllowed:
			return stream.Errorf(stream.CodeNotFound, "method not allowed on this route"), false
		case fiber.StatusBadRequest, fiber.StatusUnprocessableEntity:
			return stream.Errorf(stream.CodeValidation, "%s", fe.Message), false
		case fiber.StatusRequestTimeout:
			return stream.Errorf(stream.CodeTimeout, "request timed out"), false
		}
		if fe.Code < 500 {
			return stream.Errorf(stream.CodeValidation, "%s", fe.Message), false
		}
	}
	switch {
	case errors.Is(err, db.ErrNotFound):
		return stream.Errorf(stream.CodeNotFound, "not found"), false
	case errors.Is(err, db.ErrSlugTaken):
		return stream.Errorf(stream.CodeSlugTaken, "slug is already taken"), false
	case errors.Is(err, db.ErrEmailTaken):
		return stream.Errorf(stream.CodeValidation, "email is already registered"), false
	case errors.Is(err, db.ErrInvalidCursor):
		return stream.Errorf(stream.CodeValidation, "cursor is not valid: pass a next_cursor from a previous page"), false
	case errors.Is(err, db.ErrInsufficientFunds):
		return stream.Errorf(stream.CodeInsufficientFunds, "insufficient funds"), false
	}
	return stream.Errorf(stream.CodeInternal, "internal error"), true
}

// errorHandler is Fiber's ErrorHandler: every error answer goes through here.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	se, unexpected := asAppError(err)
	if unexpected {
		s.log.Error("request failed", slog.String("request_id", requestID(c)), slog.String("method", c.Method()),
			slog.String("path", c.Path()), slog.Any("err", err))
	}
	if isFacadePath(c.Path()) {
		return writeOpenAIError(c, err, se)
	}
	return c.Status(statusOf(se.Code)).JSON(errorBody{Error: se})
}

func errValidation(format string, args ...any) *stream.Error {
	return stream.Errorf(stream.CodeValidation, format, args...)
}

func errNotFound(what string) *stream.Error {
	return stream.Errorf(stream.CodeNotFound, "%s not found", what)
}

func errUnauthorized(msg string) *stream.Error {
	return stream.Errorf(stream.CodeUnauthorized, "%s", msg)
}
