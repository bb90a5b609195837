// The official `openai` npm package, as a Node program would use it: the client reads
// OPENAI_BASE_URL and OPENAI_API_KEY from the environment (tests point them at notebook-recorder
// serve). Asks one question plainly and once streamed; prints one JSON line with the answers,
// or {"status", "message"} for an API error (a missing recording is a 404).
const OpenAI = require("openai");

async function main() {
  const client = new OpenAI({ maxRetries: 0 });
  const question = process.argv[2] || "What is the latest version of Python?";
  const messages = [{ role: "user", content: question }];
  const plain = await client.chat.completions.create({ model: "gpt-4o", messages });
  const stream = await client.chat.completions.create({ model: "gpt-4o", messages, stream: true });
  let streamed = "";
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    streamed += chunk.choices[0]?.delta?.content ?? "";
  }
  console.log(JSON.stringify({ plain: plain.choices[0].message.content, id: plain.id, streamed, chunks }));
}

main().catch((error) => {
  console.log(JSON.stringify({ status: error.status ?? null, message: String(error.message) }));
  process.exit(3);
});
