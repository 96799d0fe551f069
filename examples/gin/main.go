// Command gin serves a gin engine with handoff on two named listeners: a
// public API and an admin listener that shows the server's state.
//
//	go run .                 # api on :8080, admin on 127.0.0.1:8081
//	curl localhost:8080/     # the pid and restart generation that answered
//
// To watch a zero-downtime upgrade, build a binary, run it, change the
// code, rebuild over the same file, and send SIGHUP:
//
//	go build -o /tmp/gin-demo . && /tmp/gin-demo &
//	go build -o /tmp/gin-demo . && kill -HUP $(cat /tmp/gin-demo.pid)
package main

import (
	"flag"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

func main() {
	api := flag.String("api", ":8080", "address of the public API")
	admin := flag.String("admin", "127.0.0.1:8081", "address of the admin listener")
	pidFile := flag.String("pidfile", os.TempDir()+"/gin-demo.pid", "PID file")
	flag.Parse()

	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).With().Timestamp().Logger()
	gin.SetMode(gin.ReleaseMode)

	srv := server.New(server.WithLogger(log), server.WithPIDFile(*pidFile), server.WithHammerTime(30*time.Second))

	public := gin.New()
	public.Use(gin.Recovery())
	public.GET("/", func(c *gin.Context) {
		st := srv.Stats()
		c.JSON(http.StatusOK, gin.H{"pid": st.PID, "generation": st.Generation, "hello": "world"})
	})
	public.GET("/slow", func(c *gin.Context) {
		time.Sleep(3 * time.Second) // a request a restart must not cut
		c.String(http.StatusOK, "done by pid %d\n", os.Getpid())
	})

	adm := gin.New()
	adm.GET("/stats", func(c *gin.Context) { c.JSON(http.StatusOK, srv.Stats()) })

	srv.Listen("api", *api, listeners.HTTP(public)).
		Listen("admin", *admin, listeners.HTTP(adm))
	if err := srv.Serve(); err != nil {
		log.Error().Err(err).Msg("serve")
		os.Exit(1)
	}
}
