"""A client with nothing but the standard library (run with ``python -I -S``: no site-packages,
so neither notebook-recorder nor openai), as another process in a notebook would call the API.

``python -I -S urllib_chat.py BASE_URL QUESTION [SESSION]``: asks QUESTION plainly and streamed
(``/v1/chat/completions``), prints one JSON line: the answers, or the error's status and body.
"""

import json
import sys
import urllib.error
import urllib.request


def post(base: str, body: dict, session: str | None) -> urllib.request.Request:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-test-wire-urllib-canary-0123456789"}
    if session:
        headers["X-Apirec-Session"] = session
    return urllib.request.Request(base + "/chat/completions", data=json.dumps(body).encode(), headers=headers)


def main() -> int:
    base, question = sys.argv[1], sys.argv[2]
    session = sys.argv[3] if len(sys.argv) > 3 else None
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": question}]}
    try:
        with urllib.request.urlopen(post(base, body, session), timeout=30) as response:
            plain = json.load(response)["choices"][0]["message"]["content"]
        streamed, chunks = "", 0
        with urllib.request.urlopen(post(base, {**body, "stream": True}, session), timeout=30) as response:
            for line in response:
                if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                    chunks += 1
                    choices = json.loads(line[6:])["choices"]
                    streamed += (choices[0]["delta"].get("content") or "") if choices else ""
    except urllib.error.HTTPError as error:
        print(json.dumps({"status": error.code, "body": json.loads(error.read())}))
        return 3
    print(json.dumps({"plain": plain, "streamed": streamed, "chunks": chunks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
