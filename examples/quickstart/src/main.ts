console.log("quickstart placeholder")
