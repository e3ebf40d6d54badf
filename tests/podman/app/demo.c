/* borescope's distroless demo app for the podman end-to-end test.
 *
 * A static binary in an image FROM scratch: no shell, no libc on disk. It
 * serves HTTP on :8080, writes JSON log lines to /var/log/demo/app.log and
 * to stdout (the container runtime's log), and runs a worker child process,
 * so every borescope capability has something real to look at.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static FILE *logf;

static void logline(const char *level, const char *msg, long n) {
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    const char *fmt = "{\"time\":\"%s.%06ldZ\",\"level\":\"%s\",\"msg\":\"%s\",\"n\":%ld,\"pid\":%d}\n";
    fprintf(logf, fmt, when, ts.tv_nsec / 1000, level, msg, n, getpid());
    fflush(logf);
    printf(fmt, when, ts.tv_nsec / 1000, level, msg, n, getpid());
    fflush(stdout);
}

static void worker(void) {
    prctl(PR_SET_NAME, "demo-worker");
    for (long n = 0;; n++) {
        logline(n % 10 == 9 ? "warn" : "info", "worker tick", n);
        sleep(1);
    }
}

int main(void) {
    mkdir("/var/log/demo", 0755);
    logf = fopen("/var/log/demo/app.log", "a");
    if (!logf) {
        perror("open /var/log/demo/app.log");
        return 1;
    }
    signal(SIGCHLD, SIG_IGN);
    if (fork() == 0) {
        worker();
        _exit(0);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) {
        perror("listen :8080");
        return 1;
    }
    logline("info", "listening on :8080", 0);
    for (long n = 0;; n++) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR) continue;
            logline("error", "accept failed", n);
            continue;
        }
        char buf[2048];
        ssize_t r = read(c, buf, sizeof buf - 1);
        (void)r;
        const char *body = "ok\n";
        dprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
        close(c);
        logline("info", "served request", n);
    }
}
