// cluster-probe: a tiny static tool for checking a cluster from inside a pod.
//
//	probe serve [addr]    HTTP server answering "hello from <hostname>" (default :8080)
//	probe get <url>       GET url, print the status line and body; exit 1 unless 2xx (https
//	                      trusts the cluster CA from the pod's ServiceAccount volume, when mounted)
//	probe lookup <name>   resolve name (the pod's resolv.conf: cluster DNS), print addresses
//	probe sleep           wait for SIGTERM (a pod to exec into)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe serve [addr] | get <url> | lookup <name> | sleep")
	}
	switch os.Args[1] {
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		serve(addr)
	case "get":
		need(3)
		get(os.Args[2])
	case "lookup":
		need(3)
		lookup(os.Args[2])
	case "sleep":
		waitForSignal()
	default:
		fail("unknown command " + os.Args[1])
	}
}

func need(n int) {
	if len(os.Args) < n {
		fail("missing argument")
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

func waitForSignal() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
}

func serve(addr string) {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	server := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		waitForSignal()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}()
	fmt.Fprintf(os.Stderr, "probe: serving on %s\n", addr)
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fail(err.Error())
	}
}

const serviceAccountCA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

func get(url string) {
	client := &http.Client{Timeout: 10 * time.Second}
	if pem, err := os.ReadFile(serviceAccountCA); err == nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	res, err := client.Get(url)
	if err != nil {
		fail(err.Error())
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	fmt.Printf("%s\n%s", res.Status, body)
	if res.StatusCode < 200 || res.StatusCode > 299 {
		os.Exit(1)
	}
}

func lookup(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		fail(err.Error())
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
}
